//! The store's schema: the DDL of every version, the forward migrations run on open and
//! the check that refuses files written by a newer acoupi.
//!
//! Each entry of [`MIGRATIONS`] takes a file from the version before it to its own
//! version; a new file runs them all. Version 1 is the first layout (no `metrics` table,
//! no views); version 2 adds `metrics`, the `responses.status` index and the views
//! `detections_flat` and `message_status`; version 3 adds `stage_runs`; version 4 adds
//! `reprocessed_files` (`acoupi reprocess`); version 5 adds `recordings.gaps` and
//! `recordings.lost_frames`; version 6 adds `reviews`, the `latest_reviews` view,
//! `recordings.kept` and the review columns at the end of `detections_flat`. `schema_version`
//! has one row per applied
//! migration; the file's version is the largest.

use duckdb::Connection;

use super::rows::SqlTime;
use super::{StoreError, database};

/// The schema version this acoupi writes.
pub const CURRENT_VERSION: i64 = 6;

/// `(version, SQL)`: the statements that bring a file from `version - 1` to `version`.
pub(super) const MIGRATIONS: [(i64, &str); 6] =
    [(1, V1), (2, V2), (3, V3), (4, V4), (5, V5), (6, V6)];

/// Version 5 adds the audio gaps a recording notes (`Recording::gaps`, `lost_frames`).
/// DuckDB cannot add a NOT NULL column, so they may be NULL in a file upgraded while
/// another program wrote to it; acoupi reads NULL as 0.
const V5: &str = "
ALTER TABLE recordings ADD COLUMN gaps UINTEGER DEFAULT 0;
ALTER TABLE recordings ADD COLUMN lost_frames UBIGINT DEFAULT 0;
";

/// Version 4 adds `reprocessed_files`: one row per archive file `acoupi reprocess` has
/// handled, per fingerprint of the detection stages it ran (see
/// `acoupi_engine::reprocess`). No key constraint: a file analysed again replaces its
/// row (delete + insert in one transaction).
const V4: &str = "
CREATE TABLE reprocessed_files (
    path VARCHAR NOT NULL,
    size UBIGINT NOT NULL,
    mtime_ns BIGINT NOT NULL,
    fingerprint VARCHAR NOT NULL,
    recording_id UUID,
    status VARCHAR NOT NULL CHECK (status IN ('done', 'filtered', 'error')),
    error VARCHAR,
    time_source VARCHAR,
    processed_on TIMESTAMPTZ NOT NULL
);
CREATE INDEX reprocessed_files_path ON reprocessed_files (path, fingerprint);
";

/// Version 3 adds `stage_runs`: one row per stage run (for `acoupi status`).
const V3: &str = "
CREATE TABLE stage_runs (
    stage VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    started_on TIMESTAMPTZ NOT NULL,
    finished_on TIMESTAMPTZ NOT NULL,
    outcome VARCHAR NOT NULL
);
CREATE INDEX stage_runs_stage ON stage_runs (stage, finished_on);
";

/// The first layout: the data model's tables, without metrics and views.
pub(super) const V1: &str = "
CREATE TABLE schema_version (
    version INTEGER PRIMARY KEY,
    applied_on TIMESTAMPTZ NOT NULL
);
CREATE TABLE deployments (
    id UUID PRIMARY KEY,
    name VARCHAR NOT NULL,
    latitude DOUBLE,
    longitude DOUBLE,
    started_on TIMESTAMPTZ NOT NULL,
    ended_on TIMESTAMPTZ
);
CREATE TABLE recordings (
    id UUID PRIMARY KEY,
    deployment_id UUID NOT NULL,
    created_on TIMESTAMPTZ NOT NULL,
    duration DOUBLE NOT NULL,
    samplerate UINTEGER NOT NULL,
    audio_channels UINTEGER NOT NULL,
    time_expansion DOUBLE NOT NULL,
    path VARCHAR
);
CREATE INDEX recordings_path ON recordings (path);
CREATE TABLE model_outputs (
    id UUID PRIMARY KEY,
    recording_id UUID NOT NULL,
    name_model VARCHAR NOT NULL,
    created_on TIMESTAMPTZ NOT NULL
);
CREATE INDEX model_outputs_recording_id ON model_outputs (recording_id);
CREATE TABLE detections (
    id UUID PRIMARY KEY,
    model_output_id UUID NOT NULL,
    prediction_type VARCHAR NOT NULL
        CHECK (prediction_type IN ('presence', 'sequence', 'event')),
    start_time DOUBLE,
    low_freq DOUBLE,
    end_time DOUBLE,
    high_freq DOUBLE,
    detection_score DOUBLE NOT NULL,
    CHECK ((start_time IS NULL) = (low_freq IS NULL)
        AND (low_freq IS NULL) = (end_time IS NULL)
        AND (end_time IS NULL) = (high_freq IS NULL))
);
CREATE INDEX detections_model_output_id ON detections (model_output_id);
CREATE TABLE detection_tags (
    detection_id UUID NOT NULL,
    key VARCHAR NOT NULL,
    value VARCHAR NOT NULL,
    confidence_score DOUBLE NOT NULL
);
CREATE INDEX detection_tags_detection_id ON detection_tags (detection_id);
CREATE TABLE messages (
    id UUID PRIMARY KEY,
    content VARCHAR,
    content_bytes BLOB,
    created_on TIMESTAMPTZ NOT NULL,
    message_type VARCHAR
        CHECK (message_type IN ('deployment', 'heartbeat', 'recording', 'summary', 'detection')),
    CHECK ((content IS NULL) <> (content_bytes IS NULL))
);
CREATE TABLE responses (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    message_id UUID NOT NULL,
    status INTEGER NOT NULL CHECK (status BETWEEN 0 AND 3),
    content VARCHAR,
    received_on TIMESTAMPTZ NOT NULL
);
CREATE INDEX responses_message_id ON responses (message_id);
";

/// The SELECT behind the `detections_flat` view since version 6, also used by `export`
/// (which adds a WHERE on `r.created_on`): version 2's columns, then the latest review's
/// `review_verdict`, `review_comment` and `reviewed_on` (NULL when never reviewed). A
/// change needs a new migration that replaces the view.
macro_rules! detections_flat_select {
    () => {
        "SELECT
    det.id AS detection_id,
    mo.id AS model_output_id,
    r.id AS recording_id,
    r.created_on AS recording_created_on,
    r.path AS recording_path,
    d.name AS deployment_name,
    mo.name_model AS model_name,
    mo.created_on AS model_output_created_on,
    det.prediction_type,
    det.detection_score,
    det.start_time,
    det.low_freq,
    det.end_time,
    det.high_freq,
    t.key AS tag_key,
    t.value AS tag_value,
    t.confidence_score AS tag_confidence,
    lr.verdict AS review_verdict,
    lr.comment AS review_comment,
    lr.reviewed_on AS reviewed_on
FROM detections det
JOIN model_outputs mo ON mo.id = det.model_output_id
JOIN recordings r ON r.id = mo.recording_id
JOIN deployments d ON d.id = r.deployment_id
LEFT JOIN detection_tags t ON t.detection_id = det.id
LEFT JOIN latest_reviews lr ON lr.detection_id = det.id"
    };
}
pub(super) use detections_flat_select;

/// The view as version 2 created it (its migration must stay as it ran).
macro_rules! detections_flat_select_v2 {
    () => {
        "SELECT
    det.id AS detection_id,
    mo.id AS model_output_id,
    r.id AS recording_id,
    r.created_on AS recording_created_on,
    r.path AS recording_path,
    d.name AS deployment_name,
    mo.name_model AS model_name,
    mo.created_on AS model_output_created_on,
    det.prediction_type,
    det.detection_score,
    det.start_time,
    det.low_freq,
    det.end_time,
    det.high_freq,
    t.key AS tag_key,
    t.value AS tag_value,
    t.confidence_score AS tag_confidence
FROM detections det
JOIN model_outputs mo ON mo.id = det.model_output_id
JOIN recordings r ON r.id = mo.recording_id
JOIN deployments d ON d.id = r.deployment_id
LEFT JOIN detection_tags t ON t.detection_id = det.id"
    };
}

/// Version 2: metrics, the status index and the two views.
const V2: &str = concat!(
    "
CREATE TABLE metrics (
    name VARCHAR NOT NULL,
    value DOUBLE NOT NULL,
    unit VARCHAR NOT NULL,
    captured_on TIMESTAMPTZ NOT NULL
);
CREATE INDEX responses_status ON responses (status);
CREATE VIEW detections_flat AS
",
    detections_flat_select_v2!(),
    ";
CREATE VIEW message_status AS
SELECT
    m.id AS message_id,
    m.created_on,
    m.message_type,
    count(r.id) AS attempts,
    arg_max(r.status, r.received_on) AS latest_status,
    CASE arg_max(r.status, r.received_on)
        WHEN 0 THEN 'SUCCESS' WHEN 1 THEN 'FAILED' WHEN 2 THEN 'ERROR' WHEN 3 THEN 'TIMEOUT'
    END AS latest_status_name,
    max(r.received_on) AS latest_received_on,
    coalesce(bool_or(r.status = 0), false) AS sent
FROM messages m
LEFT JOIN responses r ON r.message_id = m.id
GROUP BY m.id, m.created_on, m.message_type;
"
);

/// The view of each reviewed detection's latest review (version 6).
macro_rules! latest_reviews_view {
    () => {
        "CREATE VIEW latest_reviews AS
SELECT detection_id, verdict, comment, reviewer, reviewed_on
FROM reviews
QUALIFY row_number() OVER (PARTITION BY detection_id ORDER BY reviewed_on DESC, id DESC) = 1;
"
    };
}

/// Version 6: reviews of detections (every review kept; the latest, by `reviewed_on`
/// then `id`, is the one `latest_reviews` and `detections_flat` show) and "keep" on a
/// recording (retention never deletes a kept recording's file). No foreign keys, as
/// everywhere in this schema: `DuckDbStore::add_review` checks the detection.
const V6: &str = concat!(
    "
CREATE TABLE reviews (
    id UUID PRIMARY KEY,
    detection_id UUID NOT NULL,
    verdict VARCHAR NOT NULL CHECK (verdict IN ('correct', 'false_positive', 'unsure')),
    comment VARCHAR,
    reviewer VARCHAR,
    reviewed_on TIMESTAMPTZ NOT NULL
);
CREATE INDEX reviews_detection_id ON reviews (detection_id);
ALTER TABLE recordings ADD COLUMN kept BOOLEAN DEFAULT false;
",
    latest_reviews_view!(),
    "
CREATE OR REPLACE VIEW detections_flat AS
",
    detections_flat_select!(),
    ";
"
);

/// The version of the opened file: 0 for an empty file. A file with tables but no
/// `schema_version` is not an acoupi store.
pub(super) fn version(conn: &Connection) -> Result<i64, String> {
    let table_count = |filter: &str| -> Result<i64, String> {
        conn.query_row(
            &format!(
                "SELECT count(*) FROM duckdb_tables() \
                 WHERE database_name = current_database() AND schema_name = 'main' {filter}"
            ),
            [],
            |row| row.get(0),
        )
        .map_err(|e| e.to_string())
    };
    if table_count("AND table_name = 'schema_version'")? == 0 {
        return match table_count("")? {
            0 => Ok(0),
            n => Err(format!(
                "the file holds {n} table(s) but no `schema_version` table: it is not an acoupi store"
            )),
        };
    }
    conn.query_row(
        "SELECT coalesce(max(version), 0) FROM schema_version",
        [],
        |row| row.get(0),
    )
    .map_err(|e| e.to_string())
}

/// Brings the file to [`CURRENT_VERSION`], one migration (and transaction) at a time.
/// Returns the version found before migrating.
pub(super) fn migrate(conn: &mut Connection, path: &std::path::Path) -> Result<i64, StoreError> {
    let open_error = |reason: String| StoreError::Open {
        path: path.to_owned(),
        reason,
    };
    let found = version(conn).map_err(open_error)?;
    check_not_newer(found, path)?;
    for (target, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        let tx = conn.transaction().map_err(database)?;
        tx.execute_batch(sql)
            .map_err(|e| open_error(format!("migrating the schema to version {target}: {e}")))?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_on) VALUES (?, ?)",
            duckdb::params![target, SqlTime(chrono::Utc::now())],
        )
        .map_err(database)?;
        tx.commit().map_err(database)?;
    }
    Ok(found)
}

/// Lets a read-only connection to a file older than version 6 (which cannot be migrated)
/// be read by this version's queries: temporary views shadow `recordings` with the
/// columns versions 5 and 6 added (0 gaps, not kept), give an empty `reviews` and
/// `latest_reviews`, and (from version 2, which has the view) `detections_flat` with the
/// review columns.
pub(super) fn read_older(conn: &Connection, found: i64) -> Result<(), String> {
    if found == 0 || found >= CURRENT_VERSION {
        return Ok(());
    }
    let database: String = conn
        .query_row("SELECT current_database()", [], |row| row.get(0))
        .map_err(|e| e.to_string())?;
    let main = format!("\"{}\".main", database.replace('"', "\"\""));
    let added = if found < 5 {
        "0::UINTEGER AS gaps, 0::UBIGINT AS lost_frames, false AS kept"
    } else {
        "false AS kept"
    };
    let mut sql = format!(
        "CREATE TEMP VIEW recordings AS SELECT *, {added} FROM {main}.recordings;
CREATE TEMP VIEW reviews AS SELECT NULL::UUID AS id, NULL::UUID AS detection_id, \
NULL::VARCHAR AS verdict, NULL::VARCHAR AS comment, NULL::VARCHAR AS reviewer, \
NULL::TIMESTAMPTZ AS reviewed_on WHERE false;
{latest}",
        latest = latest_reviews_view!().replace("CREATE VIEW", "CREATE TEMP VIEW"),
    );
    if found >= 2 {
        sql.push_str("CREATE TEMP VIEW detections_flat AS ");
        sql.push_str(detections_flat_select!());
        sql.push(';');
    }
    conn.execute_batch(&sql)
        .map_err(|e| format!("cannot read a version {found} store: {e}"))
}

/// Refuses a file written by a newer acoupi.
pub(super) fn check_not_newer(found: i64, path: &std::path::Path) -> Result<(), StoreError> {
    if found > CURRENT_VERSION {
        Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found,
            supported: CURRENT_VERSION,
        })
    } else {
        Ok(())
    }
}
