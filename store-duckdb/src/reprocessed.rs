//! [`ArchiveStore`] for [`DuckDbStore`]: the `reprocessed_files` table of
//! `acoupi reprocess`. A batch of files is one transaction: each file's recording, model
//! outputs (with detections and tags), messages and its `reprocessed_files` row, so a
//! crash leaves every file either wholly recorded or not at all.

use acoupi_engine::data::Recording;
use acoupi_engine::reprocess::{ArchiveStore, FileStatus, ProcessedEntry, ReprocessedFile};
use acoupi_engine::store::StoreResult;
use duckdb::params;

use super::rows::{self, SqlTime, SqlUuid, path_text};
use super::store::{
    IfStored, add_message_if_missing, append, in_transaction, insert_model_output, put_recording,
};
use super::{DuckDbStore, StoreError, database};

const COLUMNS: [&str; 9] = [
    "path",
    "size",
    "mtime_ns",
    "fingerprint",
    "recording_id",
    "status",
    "error",
    "time_source",
    "processed_on",
];

impl ArchiveStore for DuckDbStore {
    fn reprocessed_files(&self, fingerprint: &str) -> StoreResult<Vec<ProcessedEntry>> {
        let rows = rows::select(
            &self.connection(),
            "SELECT path, arg_max(size, processed_on)::BIGINT, arg_max(mtime_ns, processed_on), arg_max(status, processed_on) \
             FROM reprocessed_files WHERE fingerprint = ? GROUP BY path",
            &[&fingerprint],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, String>(3)?,
                ))
            },
        )?;
        rows.into_iter()
            .map(|(path, size, mtime_ns, status)| {
                let status = FileStatus::parse(&status).ok_or_else(|| {
                    StoreError::Invalid(format!("reprocessed_files.status `{status}` of `{path}`"))
                })?;
                Ok(ProcessedEntry {
                    path: path.into(),
                    size: u64::try_from(size).unwrap_or(0),
                    mtime_ns,
                    status,
                })
            })
            .collect()
    }

    fn store_reprocessed(&self, files: &[ReprocessedFile]) -> StoreResult<()> {
        if files.is_empty() {
            return Ok(());
        }
        in_transaction(&mut self.connection(), |conn| {
            for file in files {
                if let Some(recording) = &file.recording {
                    put_recording(conn, recording, IfStored::Keep)?;
                }
                for output in &file.outputs {
                    insert_model_output(conn, output)?;
                }
                for message in &file.messages {
                    add_message_if_missing(conn, message)?;
                }
                let path = path_text(&file.path)?;
                conn.prepare("DELETE FROM reprocessed_files WHERE path = ? AND fingerprint = ?")
                    .and_then(|mut statement| statement.execute(params![path, file.fingerprint]))
                    .map_err(database)?;
            }
            let texts = files
                .iter()
                .map(|f| path_text(&f.path))
                .collect::<Result<Vec<_>, _>>()?;
            append(conn, "reprocessed_files", &COLUMNS, |appender| {
                for (file, path) in files.iter().zip(texts) {
                    appender.append_row(params![
                        path,
                        i64::try_from(file.size).unwrap_or(i64::MAX),
                        file.mtime_ns,
                        file.fingerprint,
                        file.recording.as_ref().map(|r: &Recording| SqlUuid(r.id)),
                        file.status.as_str(),
                        file.error,
                        file.time_source.map(|s| s.as_str()),
                        SqlTime(file.processed_on)
                    ])?;
                }
                Ok(())
            })
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::path::{Path, PathBuf};

    use acoupi_engine::data::{
        Deployment, Detection, Message, ModelOutput, PredictedTag, PredictionType, Recording, Tag,
    };
    use acoupi_engine::reprocess::{ArchiveStore, FileStatus, ReprocessedFile, TimeSource};
    use chrono::Utc;

    use super::DuckDbStore;

    /// A 3 s recording at 48 kHz (as the components' tests build one).
    fn recording() -> Recording {
        Recording::new(Deployment::new("test site"), 3.0, 48_000).unwrap()
    }

    fn detection(score: f64, tags: &[(&str, &str, f64)]) -> Detection {
        let mut d = Detection::new(PredictionType::Event);
        d.detection_score = score;
        d.tags = tags
            .iter()
            .map(|(k, v, s)| PredictedTag::new(Tag::new(*k, *v), *s).unwrap())
            .collect();
        d
    }

    fn count(store: &DuckDbStore, sql: &str) -> i64 {
        store
            .connection()
            .query_row(sql, [], |row| row.get(0))
            .unwrap()
    }

    /// A file analysed into one output of two detections and one message, or a bad one.
    pub(crate) fn file(path: &str, good: bool) -> ReprocessedFile {
        let mut recording = recording();
        recording.path = Some(PathBuf::from(path));
        let output = ModelOutput::new(
            "m",
            recording.clone(),
            vec![
                detection(0.9, &[("species", "a", 0.8)]),
                detection(0.5, &[]),
            ],
        );
        ReprocessedFile {
            path: PathBuf::from(path),
            size: 1000,
            mtime_ns: 1_750_000_000_000_000_123,
            fingerprint: "fp".into(),
            status: if good {
                FileStatus::Done
            } else {
                FileStatus::Error
            },
            error: (!good).then(|| "truncated".into()),
            time_source: good.then_some(TimeSource::FileName),
            recording: good.then_some(recording),
            outputs: if good { vec![output] } else { Vec::new() },
            messages: if good {
                vec![Message::new("hello")]
            } else {
                Vec::new()
            },
            processed_on: Utc::now(),
        }
    }

    #[test]
    fn a_batch_commits_outputs_messages_and_rows_and_a_retry_replaces_the_row() {
        let dir = tempfile::tempdir().unwrap();
        let store = DuckDbStore::open(&dir.path().join("s.duckdb")).unwrap();
        store
            .store_reprocessed(&[file("/a/1.wav", true), file("/a/2.wav", false)])
            .unwrap();
        let counts = [
            "recordings",
            "model_outputs",
            "detections",
            "detection_tags",
            "messages",
            "reprocessed_files",
        ]
        .map(|t| count(&store, &format!("SELECT count(*) FROM {t}")));
        assert_eq!(counts, [1, 1, 2, 1, 1, 2]);
        let mut entries = store.reprocessed_files("fp").unwrap();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(
            entries
                .iter()
                .map(|e| (e.path.as_path(), e.status))
                .collect::<Vec<_>>(),
            [
                (Path::new("/a/1.wav"), FileStatus::Done),
                (Path::new("/a/2.wav"), FileStatus::Error)
            ]
        );
        assert_eq!(
            (entries[0].size, entries[0].mtime_ns),
            (1000, 1_750_000_000_000_000_123)
        );
        assert!(store.reprocessed_files("other").unwrap().is_empty());
        // Retried and now good: the error row is replaced.
        store.store_reprocessed(&[file("/a/2.wav", true)]).unwrap();
        assert_eq!(count(&store, "SELECT count(*) FROM reprocessed_files"), 2);
        assert_eq!(
            count(
                &store,
                "SELECT count(*) FROM reprocessed_files WHERE status = 'done' AND time_source = 'file_name' AND recording_id IS NOT NULL"
            ),
            2
        );
    }
}
