//! Where acoupi finds, at run time, the files it ships with: the default models and their
//! labels, the models' reference cases, the example pipelines and the schema. An installed
//! or copied binary finds them without its source tree.
//!
//! A *data dir* holds the same tree as the repository root's resource folders:
//! `models/<model>/…` (with each model's licence), `pipelines/*.toml` and
//! `schemas/pipeline.schema.json`. A resource is a path relative to a data dir (e.g.
//! `models/birdnet/birdnet_v24_fp32.onnx`), looked up in these data dirs, in order; the
//! first that holds it wins:
//!
//! 1. `$ACOUPI_DATA_DIR`, when set;
//! 2. `<the running executable's folder>/../share/acoupi`, symlinks resolved (so
//!    `/usr/bin/acoupi` looks in `/usr/share/acoupi`, and a tree `<prefix>/{bin,share}`
//!    copied anywhere finds its own files);
//! 3. `/usr/share/acoupi` (where the packages install them);
//! 4. the source tree acoupi was compiled in (the workspace root), in dev builds only.
//!
//! A path the pipeline gives (`model = "…"`, relative to the pipeline file) comes before
//! all of these: a component looks here only for a default it was not given.
//!
//! Step 4 is compiled in unless the build sets `ACOUPI_NO_SOURCE_TREE=1` (read at compile
//! time; the package builds set it). A packaged binary must never read the folder it was
//! built in: on a station that folder is absent or, worse, holds something else. Dev
//! builds keep it, so that `cargo run` and the tests work in a checkout with nothing
//! installed.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

/// The environment variable naming a data dir (step 1).
pub const DATA_DIR_VAR: &str = "ACOUPI_DATA_DIR";
/// The data dir the packages install (step 3).
pub const SYSTEM_DATA_DIR: &str = "/usr/share/acoupi";
/// The data dir beside an executable, relative to the executable's folder (step 2).
pub const BESIDE_EXECUTABLE: &str = "../share/acoupi";

/// The workspace root this crate was compiled in, unless the build set
/// `ACOUPI_NO_SOURCE_TREE` (to anything but empty or `0`).
pub const SOURCE_TREE: Option<&str> = if set(option_env!("ACOUPI_NO_SOURCE_TREE")) {
    None
} else {
    Some(env!("CARGO_MANIFEST_DIR"))
};

/// Whether a compile-time variable is set to something other than empty or `0`.
const fn set(value: Option<&str>) -> bool {
    match value {
        None => false,
        Some(value) => {
            let bytes = value.as_bytes();
            !(bytes.is_empty() || (bytes.len() == 1 && bytes[0] == b'0'))
        }
    }
}

/// A step of the lookup, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// `$ACOUPI_DATA_DIR`.
    DataDirVar,
    /// `<executable's folder>/../share/acoupi`.
    Executable,
    /// `/usr/share/acoupi`.
    System,
    /// The source tree (dev builds).
    SourceTree,
}

impl Step {
    /// A short machine-readable name (`acoupi models --json`).
    pub fn name(self) -> &'static str {
        match self {
            Step::DataDirVar => "ACOUPI_DATA_DIR",
            Step::Executable => "executable",
            Step::System => "system",
            Step::SourceTree => "source-tree",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::DataDirVar => "$ACOUPI_DATA_DIR",
            Step::Executable => "beside the executable (<exe>/../share/acoupi)",
            Step::System => "the system data dir",
            Step::SourceTree => "the source tree (dev build)",
        })
    }
}

/// What the lookup reads from the process, as values: tests give their own instead of
/// setting process-wide environment variables.
#[derive(Debug, Clone, Default)]
pub struct LookupInputs {
    /// The value of `$ACOUPI_DATA_DIR` (an empty value counts as unset).
    pub data_dir_var: Option<OsString>,
    /// The running executable (`std::env::current_exe`); its symlinks are resolved.
    pub executable: Option<PathBuf>,
    /// The system data dir (`/usr/share/acoupi`).
    pub system: Option<PathBuf>,
    /// The source tree, in dev builds.
    pub source_tree: Option<PathBuf>,
}

impl LookupInputs {
    /// This process's inputs: its environment, its executable, the system data dir and
    /// (dev builds) the source tree.
    pub fn from_process() -> LookupInputs {
        LookupInputs {
            data_dir_var: std::env::var_os(DATA_DIR_VAR),
            executable: std::env::current_exe().ok(),
            system: Some(PathBuf::from(SYSTEM_DATA_DIR)),
            source_tree: SOURCE_TREE
                .map(Path::new)
                .and_then(Path::parent)
                .map(Path::to_path_buf),
        }
    }
}

/// One place the lookup looks: its step and its folder (`None` when the step gives none
/// here: the variable is unset, the executable unknown, a release build).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    pub step: Step,
    pub path: Option<PathBuf>,
}

/// A resource found: where, and at which step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The resource's file.
    pub path: PathBuf,
    /// The data dir it was found in.
    pub data_dir: PathBuf,
    pub step: Step,
}

/// A resource in none of the data dirs: it names every place looked, in order, and (for a
/// component's default) the pipeline key to set instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct NotFound {
    /// The resource, relative to a data dir.
    pub resource: String,
    /// Each step and the file looked for there (`None`: the step gave no folder).
    pub looked: Vec<(Step, Option<PathBuf>)>,
    /// The component's key that gives the file instead (`model`, `range_filter.model`).
    pub key: Option<String>,
}

impl NotFound {
    /// The same error, naming the pipeline key that gives the file instead.
    pub fn with_key(mut self, key: &str) -> NotFound {
        self.key = Some(key.to_string());
        self
    }
}

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "acoupi's file `{}` was not found; looked, in order, in",
            self.resource
        )?;
        for (i, (step, path)) in self.looked.iter().enumerate() {
            match path {
                Some(path) => write!(f, "\n  {}. {step}: {}", i + 1, path.display())?,
                None if *step == Step::DataDirVar => {
                    write!(f, "\n  {}. {step}: not set", i + 1)?;
                }
                None => write!(f, "\n  {}. {step}: not available", i + 1)?,
            }
        }
        writeln!(f)?;
        if let Some(key) = &self.key {
            write!(
                f,
                "set `{key}` in the component's table to the file (relative to the pipeline file), or "
            )?;
        }
        write!(
            f,
            "set {DATA_DIR_VAR} to a folder holding `{}`, or install acoupi's data files",
            self.resource
        )
    }
}

/// The data dirs to look in, in lookup order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDirs {
    dirs: Vec<DataDir>,
}

impl DataDirs {
    /// The data dirs of `inputs`, in order; a folder already given by an earlier step is
    /// left out (`/usr/bin/acoupi` gives `/usr/share/acoupi` at step 2, not again at 3).
    pub fn new(inputs: LookupInputs) -> DataDirs {
        let data_dir_var = inputs
            .data_dir_var
            .filter(|value| !value.is_empty())
            .map(PathBuf::from);
        let beside_executable = inputs.executable.and_then(|exe| {
            let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
            exe.parent()
                .map(|bin| normalise(&bin.join(BESIDE_EXECUTABLE)))
        });
        let candidates = [
            (Step::DataDirVar, data_dir_var),
            (Step::Executable, beside_executable),
            (Step::System, inputs.system),
            (Step::SourceTree, inputs.source_tree),
        ];
        let mut dirs: Vec<DataDir> = Vec::with_capacity(candidates.len());
        for (step, path) in candidates {
            let seen = path
                .as_ref()
                .is_some_and(|p| dirs.iter().any(|d| d.path.as_ref() == Some(p)));
            if !seen {
                dirs.push(DataDir { step, path });
            }
        }
        DataDirs { dirs }
    }

    /// This process's data dirs ([`LookupInputs::from_process`]).
    pub fn from_process() -> DataDirs {
        DataDirs::new(LookupInputs::from_process())
    }

    /// Every step with its folder, in order.
    pub fn dirs(&self) -> &[DataDir] {
        &self.dirs
    }

    /// The first data dir holding the file `resource` (a relative path such as
    /// `models/birdnet/birdnet_v24_fp32.onnx`).
    pub fn find(&self, resource: &str) -> Result<Found, NotFound> {
        let mut looked = Vec::with_capacity(self.dirs.len());
        for dir in &self.dirs {
            let candidate = dir.path.as_ref().map(|d| d.join(resource));
            if let (Some(data_dir), Some(file)) = (&dir.path, &candidate)
                && file.is_file()
            {
                return Ok(Found {
                    path: file.clone(),
                    data_dir: data_dir.clone(),
                    step: dir.step,
                });
            }
            looked.push((dir.step, candidate));
        }
        Err(NotFound {
            resource: resource.to_string(),
            looked,
            key: None,
        })
    }
}

/// The file of a component's default `resource` in this process's data dirs; when it is
/// missing, the error names every place looked and the component's `key` to set instead.
pub fn default_file(resource: &str, key: &str) -> Result<PathBuf, NotFound> {
    DataDirs::from_process()
        .find(resource)
        .map(|found| found.path)
        .map_err(|e| e.with_key(key))
}

/// `a/bin/../share` → `a/share`, without touching the filesystem (the executable's
/// folder is already canonical).
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::ParentDir if out.parent().is_some() => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESOURCE: &str = "models/birdnet/birdnet_v24_fp32.onnx";

    /// A data dir under `root` holding `RESOURCE`.
    fn data_dir(root: &Path, name: &str) -> PathBuf {
        let dir = root.join(name);
        let file = dir.join(RESOURCE);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, name).unwrap();
        dir
    }

    /// `<root>/<prefix>/bin/acoupi` (an empty file standing for the executable).
    fn executable(root: &Path, prefix: &str) -> PathBuf {
        let bin = root.join(prefix).join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let exe = bin.join("acoupi");
        std::fs::write(&exe, "").unwrap();
        exe
    }

    #[test]
    fn each_step_wins_over_the_ones_after_it() {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        let var = data_dir(&root, "var");
        let exe = executable(&root, "prefix");
        let beside = data_dir(&root, "prefix/share/acoupi");
        let system = data_dir(&root, "system");
        let source = data_dir(&root, "source");
        let inputs = LookupInputs {
            data_dir_var: Some(var.clone().into_os_string()),
            executable: Some(exe.clone()),
            system: Some(system.clone()),
            source_tree: Some(source.clone()),
        };
        let found = |inputs: &LookupInputs| DataDirs::new(inputs.clone()).find(RESOURCE).unwrap();
        let want = |dir: &Path, step| Found {
            path: dir.join(RESOURCE),
            data_dir: dir.to_path_buf(),
            step,
        };
        assert_eq!(found(&inputs), want(&var, Step::DataDirVar));
        // An unset or empty variable, or one naming a folder without the file: the next.
        for value in [None, Some(OsString::new()), Some(root.join("empty").into())] {
            let inputs = LookupInputs {
                data_dir_var: value,
                ..inputs.clone()
            };
            assert_eq!(found(&inputs), want(&beside, Step::Executable));
        }
        let inputs = LookupInputs {
            data_dir_var: None,
            ..inputs
        };
        std::fs::remove_file(beside.join(RESOURCE)).unwrap();
        assert_eq!(found(&inputs), want(&system, Step::System));
        std::fs::remove_file(system.join(RESOURCE)).unwrap();
        assert_eq!(found(&inputs), want(&source, Step::SourceTree));
        // A directory of the resource's name is not the file.
        std::fs::remove_file(source.join(RESOURCE)).unwrap();
        std::fs::create_dir(source.join(RESOURCE)).unwrap();
        assert!(DataDirs::new(inputs).find(RESOURCE).is_err());
    }

    #[test]
    fn a_symlinked_executable_looks_beside_its_target() {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        let exe = executable(&root, "opt/acoupi");
        let beside = data_dir(&root, "opt/acoupi/share/acoupi");
        // A link in another prefix, which holds data of its own: the target's wins.
        let link_bin = root.join("usr/local/bin");
        std::fs::create_dir_all(&link_bin).unwrap();
        data_dir(&root, "usr/local/share/acoupi");
        std::os::unix::fs::symlink(&exe, link_bin.join("acoupi")).unwrap();
        let dirs = DataDirs::new(LookupInputs {
            executable: Some(link_bin.join("acoupi")),
            ..LookupInputs::default()
        });
        let found = dirs.find(RESOURCE).unwrap();
        assert_eq!((found.data_dir, found.step), (beside, Step::Executable));
    }

    #[test]
    fn a_folder_given_twice_is_looked_in_once_at_its_first_step() {
        let dirs = DataDirs::new(LookupInputs {
            data_dir_var: None,
            executable: Some(PathBuf::from("/usr/bin/acoupi-that-is-not-there")),
            system: Some(PathBuf::from(SYSTEM_DATA_DIR)),
            source_tree: None,
        });
        let steps: Vec<(Step, Option<&Path>)> = dirs
            .dirs()
            .iter()
            .map(|d| (d.step, d.path.as_deref()))
            .collect();
        assert_eq!(
            steps,
            [
                (Step::DataDirVar, None),
                (Step::Executable, Some(Path::new(SYSTEM_DATA_DIR))),
                (Step::SourceTree, None),
            ]
        );
    }

    #[test]
    fn a_missing_resource_names_every_place_looked_in_order_and_the_key() {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        let empty = root.join("empty");
        std::fs::create_dir(&empty).unwrap();
        let exe = executable(&root, "prefix");
        let inputs = LookupInputs {
            data_dir_var: Some(empty.clone().into_os_string()),
            executable: Some(exe),
            system: Some(root.join("system")),
            source_tree: None,
        };
        let error = DataDirs::new(inputs.clone())
            .find(RESOURCE)
            .unwrap_err()
            .with_key("model");
        let places = [
            empty.join(RESOURCE),
            root.join("prefix/share/acoupi").join(RESOURCE),
            root.join("system").join(RESOURCE),
        ];
        assert_eq!(
            error.looked,
            [
                (Step::DataDirVar, Some(places[0].clone())),
                (Step::Executable, Some(places[1].clone())),
                (Step::System, Some(places[2].clone())),
                (Step::SourceTree, None),
            ]
        );
        let text = error.to_string();
        let positions: Vec<usize> = places
            .iter()
            .map(|p| {
                text.find(&p.display().to_string())
                    .unwrap_or_else(|| panic!("{} not in {text}", p.display()))
            })
            .collect();
        assert!(positions.is_sorted(), "in lookup order: {text}");
        for part in [
            "`models/birdnet/birdnet_v24_fp32.onnx` was not found",
            "4. the source tree (dev build): not available",
            "set `model` in the component's table",
            "ACOUPI_DATA_DIR",
        ] {
            assert!(text.contains(part), "{part:?} not in {text}");
        }
        // Unset, the variable is said to be.
        let unset = DataDirs::new(LookupInputs {
            data_dir_var: None,
            ..inputs
        })
        .find(RESOURCE)
        .unwrap_err();
        assert!(
            unset.to_string().contains("1. $ACOUPI_DATA_DIR: not set"),
            "{unset}"
        );
    }

    #[test]
    fn dev_builds_look_in_the_source_tree_and_find_the_bundled_models() {
        let Some(source) = LookupInputs::from_process().source_tree else {
            // Built with ACOUPI_NO_SOURCE_TREE: no step 4 at all.
            assert!(set(option_env!("ACOUPI_NO_SOURCE_TREE")) && SOURCE_TREE.is_none());
            return;
        };
        // The workspace root.
        assert!(SOURCE_TREE.is_some());
        assert!(source.join("Cargo.toml").is_file() && source.join("engine").is_dir());
        let found = DataDirs::new(LookupInputs {
            source_tree: Some(source.clone()),
            ..LookupInputs::default()
        })
        .find(RESOURCE)
        .unwrap();
        assert_eq!(found.data_dir, source);
    }

    #[test]
    fn only_an_empty_or_zero_value_leaves_the_source_tree_in() {
        assert!(!set(None) && !set(Some("")) && !set(Some("0")));
        assert!(set(Some("1")) && set(Some("yes")));
    }
}
