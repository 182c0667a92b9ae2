//! Reviews of detections and "keep" marks on recordings (schema version 6): the
//! [`Review`] a person gives a detection (every review is kept; the latest wins, and
//! `detections_flat` shows it), and [`DuckDbStore::set_kept`], which retention honours
//! (a kept recording's file is never deleted, see `get_kept_files`).

use chrono::{DateTime, Utc};
use duckdb::params;
use uuid::Uuid;

use super::rows::{SqlTime, SqlUuid, uuid_literal};
use super::store::{execute_cached, in_transaction};
use super::{DuckDbStore, StoreError};

/// What a reviewer says about a detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The detection is what the model says.
    Correct,
    /// It is not.
    FalsePositive,
    /// The reviewer cannot tell.
    Unsure,
}

impl Verdict {
    /// Every verdict, in the order the dashboard shows them.
    pub const ALL: [Verdict; 3] = [Verdict::Correct, Verdict::FalsePositive, Verdict::Unsure];

    /// The stored name: `correct`, `false_positive`, `unsure`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Correct => "correct",
            Verdict::FalsePositive => "false_positive",
            Verdict::Unsure => "unsure",
        }
    }

    /// A label for people: "correct", "false positive", "unsure".
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Correct => "correct",
            Verdict::FalsePositive => "false positive",
            Verdict::Unsure => "unsure",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Verdict {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Verdict::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                format!("`{s}` is not a verdict (one of correct, false_positive, unsure)")
            })
    }
}

/// One review of one detection (table `reviews`).
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    pub id: Uuid,
    pub detection_id: Uuid,
    pub verdict: Verdict,
    pub comment: Option<String>,
    pub reviewer: Option<String>,
    pub reviewed_on: DateTime<Utc>,
}

impl Review {
    /// A new review (fresh id) given now.
    pub fn new(
        detection_id: Uuid,
        verdict: Verdict,
        comment: Option<String>,
        reviewer: Option<String>,
    ) -> Review {
        Review {
            id: Uuid::new_v4(),
            detection_id,
            verdict,
            comment,
            reviewer,
            reviewed_on: Utc::now(),
        }
    }
}

const INSERT_REVIEW: &str = "INSERT INTO reviews \
    (id, detection_id, verdict, comment, reviewer, reviewed_on) VALUES (?, ?, ?, ?, ?, ?)";

impl DuckDbStore {
    /// Adds a review (earlier reviews of the detection stay, as its history).
    ///
    /// Errors: [`StoreError::NotFound`] when no detection has the id;
    /// [`StoreError::Database`] otherwise (e.g. a read-only store).
    pub fn add_review(&self, review: &Review) -> Result<(), StoreError> {
        in_transaction(&mut self.connection(), |conn| {
            if !exists(conn, "detections", review.detection_id)? {
                return Err(unknown("detection", review.detection_id));
            }
            execute_cached(
                conn,
                INSERT_REVIEW,
                params![
                    SqlUuid(review.id),
                    SqlUuid(review.detection_id),
                    review.verdict.as_str(),
                    review.comment,
                    review.reviewer,
                    SqlTime(review.reviewed_on)
                ],
            )
            .map(drop)
        })
    }

    /// Marks a recording kept (retention never deletes its file) or not.
    ///
    /// Errors: [`StoreError::NotFound`] when no recording has the id.
    pub fn set_kept(&self, recording_id: Uuid, kept: bool) -> Result<(), StoreError> {
        in_transaction(&mut self.connection(), |conn| {
            let changed = execute_cached(
                conn,
                "UPDATE recordings SET kept = ? WHERE id = ?",
                params![kept, SqlUuid(recording_id)],
            )?;
            match changed {
                0 => Err(unknown("recording", recording_id)),
                _ => Ok(()),
            }
        })
    }
}

/// The error for an id no row has.
fn unknown(what: &'static str, id: Uuid) -> StoreError {
    StoreError::NotFound { what, id }
}

/// Whether `table` has a row with this id (a literal, so DuckDB seeks the key index).
fn exists(conn: &duckdb::Connection, table: &str, id: Uuid) -> Result<bool, StoreError> {
    let sql = format!(
        "SELECT count(*) FROM {table} WHERE id = {}",
        uuid_literal(id)
    );
    let n: i64 = conn
        .query_row(&sql, [], |row| row.get(0))
        .map_err(super::database)?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use acoupi_engine::data::{
        BoundingBox, Deployment, Detection, ModelOutput, PredictedTag, PredictionType, Recording,
        Tag,
    };
    use acoupi_engine::retention::{RetentionPolicy, decide};
    use acoupi_engine::store::Store;

    use super::super::schema::{CURRENT_VERSION, MIGRATIONS};
    use super::*;

    const DETECTION: &str = "00000000-0000-4000-8000-000000000004";
    const RECORDING: &str = "00000000-0000-4000-8000-000000000002";

    /// A version-5 file as acoupi 5 left it: migrations 1 to 5 and one detection.
    fn v5_fixture(path: &Path) {
        let conn = duckdb::Connection::open(path).unwrap();
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v <= 5) {
            conn.execute_batch(sql).unwrap();
            conn.execute(
                "INSERT INTO schema_version VALUES (?, TIMESTAMPTZ '2026-01-01 00:00:00+00')",
                [version],
            )
            .unwrap();
        }
        conn.execute_batch(&format!(
            "INSERT INTO deployments VALUES ('00000000-0000-4000-8000-000000000001', 'garden',
                 NULL, NULL, TIMESTAMPTZ '2026-01-01 06:00:00+00', NULL);
             INSERT INTO recordings VALUES ('{RECORDING}',
                 '00000000-0000-4000-8000-000000000001', TIMESTAMPTZ '2026-01-01 06:10:00+00',
                 3.0, 48000, 1, 1.0, '/rec/a.wav', 0, 0);
             INSERT INTO model_outputs VALUES ('00000000-0000-4000-8000-000000000003',
                 '{RECORDING}', 'birdnet', TIMESTAMPTZ '2026-01-01 06:10:05+00');
             INSERT INTO detections VALUES ('{DETECTION}',
                 '00000000-0000-4000-8000-000000000003', 'event', 0.5, 1000, 1.5, 8000, 0.75);
             INSERT INTO detection_tags VALUES ('{DETECTION}', 'species', 'Parus major', 0.7);"
        ))
        .unwrap();
    }

    fn one<T: duckdb::types::FromSql>(store: &DuckDbStore, sql: &str) -> T {
        store
            .connection()
            .query_row(sql, [], |row| row.get(0))
            .unwrap()
    }

    fn review(verdict: Verdict, comment: Option<&str>, on: &str) -> Review {
        Review {
            reviewed_on: acoupi_engine::data::parse_timestamp(on).unwrap(),
            ..Review::new(
                Uuid::parse_str(DETECTION).unwrap(),
                verdict,
                comment.map(str::to_owned),
                Some("ana".into()),
            )
        }
    }

    #[test]
    fn a_version_5_file_upgrades_and_the_latest_review_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v5.duckdb");
        v5_fixture(&path);

        // Read-only, not migrated: the review columns read as NULL, nothing is kept.
        let reader = DuckDbStore::open_read_only(&path).unwrap();
        assert_eq!(reader.schema_version().unwrap(), 5);
        let verdict: Option<String> = one(
            &reader,
            "SELECT review_verdict FROM detections_flat WHERE tag_value = 'Parus major'",
        );
        assert_eq!(verdict, None);
        assert_eq!(
            one::<i64>(&reader, "SELECT count(*) FROM latest_reviews"),
            0
        );
        let kept = reader.get_kept_files(Path::new("/rec")).unwrap();
        assert!(!kept[0].kept);
        drop(reader);

        let store = DuckDbStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), CURRENT_VERSION);
        // The old columns keep their order; the review columns come last.
        let columns: String = one(
            &store,
            "SELECT string_agg(column_name, ',' ORDER BY column_index) FROM duckdb_columns() \
             WHERE table_name = 'detections_flat'",
        );
        assert!(
            columns.starts_with("detection_id,model_output_id,recording_id,")
                && columns.ends_with(
                    ",tag_key,tag_value,tag_confidence,review_verdict,review_comment,reviewed_on"
                ),
            "{columns}"
        );
        assert_eq!(
            one::<Option<String>>(&store, "SELECT review_verdict FROM detections_flat"),
            None
        );

        store
            .add_review(&review(
                Verdict::FalsePositive,
                None,
                "2026-01-02T08:00:00Z",
            ))
            .unwrap();
        store
            .add_review(&review(
                Verdict::Correct,
                Some("song, clear"),
                "2026-01-02T09:00:00Z",
            ))
            .unwrap();
        // An older review added later does not win.
        store
            .add_review(&review(Verdict::Unsure, None, "2026-01-02T07:00:00Z"))
            .unwrap();
        assert_eq!(one::<i64>(&store, "SELECT count(*) FROM reviews"), 3);
        assert_eq!(
            one::<String>(
                &store,
                "SELECT review_verdict || '|' || review_comment || '|' || reviewed_on::VARCHAR FROM detections_flat"
            ),
            "correct|song, clear|2026-01-02 09:00:00+00"
        );
        assert_eq!(
            one::<i64>(&store, "SELECT count(*) FROM detections_flat"),
            1,
            "reviews add no rows"
        );

        let unknown = Uuid::new_v4();
        let err = store
            .add_review(&Review::new(unknown, Verdict::Correct, None, None))
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::NotFound { what: "detection", id } if *id == unknown),
            "{err}"
        );
        assert!(err.to_string().contains(&unknown.to_string()), "{err}");
        let err = store.set_kept(unknown, true).unwrap_err();
        assert!(
            matches!(
                &err,
                StoreError::NotFound {
                    what: "recording",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn exports_carry_the_verdict() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v5.duckdb");
        v5_fixture(&path);
        let store = DuckDbStore::open(&path).unwrap();
        store
            .add_review(&review(
                Verdict::FalsePositive,
                Some("a door"),
                "2026-01-02T08:00:00Z",
            ))
            .unwrap();
        drop(store);
        let out = dir.path().join("detections.csv");
        crate::export(
            &path,
            crate::ExportWhat::Detections,
            crate::ExportFormat::Csv,
            &out,
            None,
            None,
        )
        .unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        let header = text.lines().next().unwrap();
        assert!(header.contains("review_verdict"), "{header}");
        assert!(
            text.contains("false_positive") && text.contains("a door"),
            "{text}"
        );
    }

    #[test]
    fn retention_never_deletes_a_kept_recording() {
        let dir = tempfile::tempdir().unwrap();
        let store = DuckDbStore::open(&dir.path().join("store.duckdb")).unwrap();
        let deployment = Deployment::new("garden");
        let mut recordings = Vec::new();
        for name in ["a.wav", "b.wav", "c.wav"] {
            let mut r = Recording::new(deployment.clone(), 3.0, 48_000)
                .unwrap()
                .with_path(format!("/rec/{name}"));
            r.created_on = acoupi_engine::data::parse_timestamp("2026-01-01T06:00:00Z").unwrap()
                + chrono::TimeDelta::minutes(recordings.len() as i64);
            store.store_recording(&r).unwrap();
            recordings.push(r);
        }
        // b is the worst: no detection at all; a and c have one.
        for r in [&recordings[0], &recordings[2]] {
            let detection = Detection::new(PredictionType::Event)
                .with_location(BoundingBox::new(0.0, 100.0, 1.0, 200.0).unwrap())
                .with_score(0.9)
                .unwrap()
                .with_tag(PredictedTag::new(Tag::new("species", "Parus major"), 0.9).unwrap());
            store
                .store_model_output(&ModelOutput::new("birdnet", r.clone(), vec![detection]))
                .unwrap();
        }
        store.set_kept(recordings[1].id, true).unwrap();
        store.set_kept(recordings[2].id, true).unwrap();
        store.set_kept(recordings[2].id, false).unwrap();

        let files = store.get_kept_files(Path::new("/rec")).unwrap();
        let kept: Vec<bool> = files.iter().map(|f| f.kept).collect();
        assert_eq!(kept, [false, true, false]);
        let sizes = vec![Some(100); files.len()];
        let policy = RetentionPolicy {
            max_age: Some(std::time::Duration::from_secs(86_400)),
            ..Default::default()
        };
        let now = acoupi_engine::data::parse_timestamp("2026-03-01T00:00:00Z").unwrap();
        // Everything is past max_age and min_free wants all of it back.
        let plan = decide(&policy, &files, &sizes, now, 10_000);
        let deleted: Vec<&PathBuf> = plan.deletions.iter().map(|d| &d.path).collect();
        assert_eq!(
            deleted,
            [&PathBuf::from("/rec/a.wav"), &PathBuf::from("/rec/c.wav")]
        );
        assert_eq!(plan.protected, 1);
        let plan = decide(&RetentionPolicy::default(), &files, &sizes, now, 10_000);
        assert!(
            plan.deletions
                .iter()
                .all(|d| d.recording_id != recordings[1].id),
            "min_free alone: {:?}",
            plan.deletions
        );
    }
}
