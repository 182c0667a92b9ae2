//! Which tag key names a detection's species: `[web] species_key` when set; else
//! `species` when any stored tag has that key (BirdNET, BatDetect2); else the key of the
//! first tag, in the order it was stored, of the newest model output that has a tag
//! (privacy markers excepted), so the demo's band-energy `sound = "chirp"` shows where a
//! species would. `None` while the store holds no tag.
//!
//! "First" is the stored order because a model lists a detection's class tag first
//! (extra tags such as a call type follow it), and the newest output because the
//! station's models may have changed since older outputs were stored.

use acoupi_engine::data::PRIVACY_TAG_KEY;
use duckdb::{Connection, OptionalExt};

use crate::WebError;

/// The key every species query uses (see the module docs).
pub(crate) fn species_key(
    conn: &Connection,
    configured: Option<&str>,
) -> Result<Option<String>, WebError> {
    if let Some(key) = configured.filter(|k| !k.is_empty()) {
        return Ok(Some(key.to_owned()));
    }
    let species: Option<i32> = conn
        .prepare("SELECT 1 FROM detection_tags WHERE key = 'species' LIMIT 1")?
        .query_row([], |row| row.get(0))
        .optional()?;
    if species.is_some() {
        return Ok(Some("species".to_owned()));
    }
    let first = conn
        .prepare(
            "SELECT t.key FROM detection_tags t \
             JOIN detections det ON det.id = t.detection_id \
             JOIN model_outputs mo ON mo.id = det.model_output_id \
             WHERE t.key <> ? \
             ORDER BY mo.created_on DESC, t.rowid ASC LIMIT 1",
        )?
        .query_row([PRIVACY_TAG_KEY], |row| row.get(0))
        .optional()?;
    Ok(first)
}
