//! `condition.free_space`: record only while a folder's filesystem has enough free space
//! (acoupi's HasSufficientSpace).
//!
//! `[retention] min_free` also guards every recording and deletes old recordings to make
//! room; this condition only says no, which suits stations without a retention policy or
//! a second disk (a USB drive for the recordings) that must never fill.

use std::path::PathBuf;
use std::sync::Arc;

use acoupi_engine::component::{ComponentError, ComponentResult, RecordingCondition};
use acoupi_engine::config::values::SpaceAmount;
use acoupi_engine::disk::{DiskSpace, SystemDisk};
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};
use chrono::{DateTime, Utc};

/// Record only while the filesystem holding `path` has at least `min_free` available.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FreeSpaceConditionConfig {
    /// Free space required: "1 GB", "500 MiB" or "10%" of the filesystem.
    pub min_free: SpaceAmount,
    /// Folder whose filesystem is checked (relative to the pipeline file). Default:
    /// `[paths] recordings`.
    pub path: Option<PathBuf>,
}

impl ComponentConfig for FreeSpaceConditionConfig {
    const KIND: &'static str = "condition.free_space";

    fn build(&self, ctx: &BuildContext) -> Result<Built, BuildError> {
        let path = self
            .path
            .as_ref()
            .map_or_else(|| ctx.settings.recordings_dir.clone(), |p| ctx.resolve(p));
        Ok(Built::Condition(Arc::new(FreeSpaceCondition {
            path,
            min_free: self.min_free,
            disk: Arc::new(SystemDisk),
        })))
    }
}

pub struct FreeSpaceCondition {
    path: PathBuf,
    min_free: SpaceAmount,
    disk: Arc<dyn DiskSpace>,
}

impl RecordingCondition for FreeSpaceCondition {
    fn should_record(&self, _: DateTime<Utc>) -> ComponentResult<bool> {
        let space = self
            .disk
            .space(&self.path)
            .map_err(|e| ComponentError::io("cannot measure free space at", &self.path, e))?;
        let needed = self.min_free.bytes_of(space.total);
        if space.available < needed {
            tracing::warn!(
                path = %self.path.display(),
                free = %bytesize::ByteSize(space.available),
                min_free = %bytesize::ByteSize(needed),
                "not enough free space"
            );
        }
        Ok(space.available >= needed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acoupi_engine::disk::Space;

    struct Disk(u64);
    impl DiskSpace for Disk {
        fn space(&self, _: &std::path::Path) -> std::io::Result<Space> {
            Ok(Space {
                available: self.0,
                total: 1_000,
            })
        }
        fn same_filesystem(&self, _: &std::path::Path, _: &std::path::Path) -> bool {
            true
        }
    }

    #[test]
    fn bytes_and_percentages_against_the_filesystem() {
        let cases = [
            (SpaceAmount::Bytes(500), 500, true),
            (SpaceAmount::Bytes(500), 499, false),
            (SpaceAmount::Percent(10.0), 100, true),
            (SpaceAmount::Percent(10.0), 99, false),
        ];
        for (min_free, available, expected) in cases {
            let condition = FreeSpaceCondition {
                path: PathBuf::from("/data"),
                min_free,
                disk: Arc::new(Disk(available)),
            };
            assert_eq!(
                condition.should_record(Utc::now()).unwrap(),
                expected,
                "{min_free} with {available} free"
            );
        }
    }

    #[test]
    fn builds_from_a_pipeline_and_measures_a_real_folder() {
        let dir = tempfile::tempdir().unwrap();
        let source = "[deployment]\nname = \"t\"\n\n[components.disk]\ntype = \"condition.free_space\"\nmin_free = \"1 B\"\n\n\
                      [components.replay]\ntype = \"recorder.replay\"\nfolder = \".\"\n\n\
                      [stages.record]\nkind = \"recording\"\nrecorder = \"replay\"\nconditions = [\"disk\"]\nschedule = { every = \"10s\" }\n";
        let pipeline =
            acoupi_engine::config::load_str(&dir.path().join("p.toml"), source, &crate::registry())
                .unwrap();
        let ctx = crate::testing::context(dir.path(), None);
        let Built::Condition(condition) = pipeline.components[0].settings.build(&ctx).unwrap()
        else {
            panic!("not a condition")
        };
        assert!(
            condition.should_record(Utc::now()).unwrap(),
            "a real filesystem has a byte free"
        );
        let bad = source.replace("\"1 B\"", "\"lots\"");
        let errors =
            acoupi_engine::config::load_str(&dir.path().join("p.toml"), &bad, &crate::registry())
                .unwrap_err();
        assert!(
            errors.to_string().contains("p.toml:6")
                || format!("{errors:?}").contains("invalid amount of space"),
            "{errors:?}"
        );
    }
}
