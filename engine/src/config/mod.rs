//! Pipeline files: their types ([`pipeline`]), validated values ([`values`]), problems and
//! their rendering ([`diagnostics`]), loading and validation ([`load`]), and the global
//! [`Settings`] every component build sees.

pub mod diagnostics;
pub mod load;
pub mod pipeline;
pub mod values;

use std::path::{Path, PathBuf};

pub use diagnostics::{Code, PipelineErrors, Problem};
pub use load::{ComponentInstance, LoadError, Pipeline, Stage, Trigger, load, load_str};
pub use pipeline::{DeploymentSection, StageKind, StageSpec};

/// The deployment as configured in `[deployment]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentSettings {
    pub name: String,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub timezone: chrono_tz::Tz,
}

/// The pipeline's global settings, with paths resolved against the pipeline file.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The folder holding the pipeline file.
    pub base_dir: PathBuf,
    pub deployment: DeploymentSettings,
    /// The DuckDB store file.
    pub store_path: PathBuf,
    /// Where new recordings wait for detection and management.
    pub temp_dir: PathBuf,
    /// Root of the kept recordings tree.
    pub recordings_dir: PathBuf,
    /// `[device] id`, if given.
    pub device_id: Option<String>,
    /// `[retention]`, if given (folders resolved against the recordings root).
    pub retention: Option<crate::retention::RetentionPolicy>,
    /// `[web]`, if given: the dashboard `acoupi run` serves.
    pub web: Option<WebSettings>,
}

/// `[web]` as validated: where the dashboard listens and where its token is read from.
#[derive(Debug, Clone, PartialEq)]
pub struct WebSettings {
    pub listen: std::net::SocketAddr,
    /// Where the token is read when the station starts (a file resolved against the
    /// pipeline file); `None`: no token (allowed on a loopback `listen` only).
    pub token: Option<crate::secret::Secret>,
    /// Reads need no token (changes still do).
    pub public: bool,
    pub species_key: Option<String>,
}

impl WebSettings {
    /// The token, read now from its variable or owner-only file (errors name the source,
    /// never the value).
    pub fn read_token(&self) -> Result<Option<String>, String> {
        self.token
            .as_ref()
            .map(|secret| secret.read_in(Path::new(""), "[web] token"))
            .transpose()
    }
}

impl Settings {
    pub(crate) fn new(
        pipeline_path: &Path,
        deployment: DeploymentSection,
        store: pipeline::StoreSection,
        paths: pipeline::PathsSection,
        device: pipeline::DeviceSection,
        retention: Option<pipeline::RetentionSection>,
        web: Option<pipeline::WebSection>,
    ) -> Self {
        let base_dir = pipeline_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let resolve = |p: &Path| normalise(&base_dir.join(p));
        let recordings_dir = resolve(&paths.recordings);
        let retention = retention.map(|r| crate::retention::RetentionPolicy {
            min_free: r.min_free.map(|m| *m.get()),
            max_age: r.max_age.map(|m| m.get().0),
            keep_best: r.keep_best.map(|n| n.get()),
            species_key: r.species_key,
            protect_species: r.protect_species.into_iter().collect(),
            protect_folders: r
                .protect_folders
                .iter()
                .map(|f| normalise(&recordings_dir.join(f)))
                .collect(),
        });
        let web = web.map(|w| WebSettings {
            listen: w.listen.map_or(pipeline::DEFAULT_LISTEN, |l| l.get().0),
            token: match (w.token_env, w.token_file) {
                (Some(env), _) => Some(crate::secret::Secret::Env(env)),
                (None, Some(file)) => Some(crate::secret::Secret::File(resolve(&file))),
                (None, None) => None,
            },
            public: w.public,
            species_key: w.species_key,
        });
        Settings {
            deployment: DeploymentSettings {
                name: deployment.name,
                latitude: deployment.latitude.map(|l| l.get().0),
                longitude: deployment.longitude.map(|l| l.get().0),
                timezone: deployment.timezone.0,
            },
            store_path: resolve(&store.path),
            temp_dir: resolve(&paths.temp),
            recordings_dir,
            device_id: device.id,
            retention,
            web,
            base_dir,
        }
    }

    /// Resolves a path from a config relative to the pipeline file (an absolute path
    /// stays as it is).
    pub fn resolve(&self, path: &Path) -> PathBuf {
        normalise(&self.base_dir.join(path))
    }
}

/// Removes `.` and folds `name/..` without touching the filesystem, so logs show
/// `demo-output/tmp` rather than `pipelines/../demo-output/tmp`. A leading `..` stays.
fn normalise(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::normalise;
    use std::path::Path;

    /// `[web]` as loaded: the default address, a token file resolved against the
    /// pipeline file, `public`; a public address without a token refused at `listen`.
    #[test]
    fn web_settings_are_resolved_and_checked() {
        let registry = crate::registry::Registry::new();
        let head = "[deployment]\nname = \"t\"\n[stages.s]\nkind = \"messaging\"\nmessengers = []\nschedule = { every = \"1min\" }\n";
        let load = |web: &str| {
            super::load_str(
                Path::new("/srv/station/p.toml"),
                &format!("{web}\n{head}"),
                &registry,
            )
        };
        let codes = |web: &str| -> Vec<&'static str> {
            load(web)
                .err()
                .map(|e| e.problems.iter().map(|p| p.code.as_str()).collect())
                .unwrap_or_default()
        };
        assert!(
            codes("[web]\nlisten = \"0.0.0.0:8080\"").contains(&"web-token-required"),
            "a public address needs a token"
        );
        assert!(codes("[web]\nlisten = \"nowhere\"").contains(&"invalid-value"));
        assert!(codes("[web]\ntoken_env = \"A\"\ntoken_file = \"b\"").contains(&"invalid-value"));
        for ok in [
            "[web]\nlisten = \"0.0.0.0:8080\"\ntoken_file = \"web-token\"\npublic = true",
            "[web]",
        ] {
            let problems = codes(ok);
            assert!(
                !problems.iter().any(|c| c.starts_with("web")),
                "{ok}: {problems:?}"
            );
        }
        let settings = super::Settings::new(
            Path::new("/srv/station/p.toml"),
            toml::from_str("name = \"t\"").unwrap(),
            Default::default(),
            Default::default(),
            Default::default(),
            None,
            Some(
                toml::from_str(
                    "listen = \"0.0.0.0:8080\"\ntoken_file = \"web-token\"\npublic = true",
                )
                .unwrap(),
            ),
        );
        let web = settings.web.unwrap();
        assert_eq!(web.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(
            web.token,
            Some(crate::secret::Secret::File("/srv/station/web-token".into()))
        );
        assert!(web.public);
        let default = super::Settings::new(
            Path::new("/srv/station/p.toml"),
            toml::from_str("name = \"t\"").unwrap(),
            Default::default(),
            Default::default(),
            Default::default(),
            None,
            Some(toml::from_str("").unwrap()),
        );
        assert_eq!(
            default.web.map(|w| (w.listen, w.token)),
            Some((super::pipeline::DEFAULT_LISTEN, None))
        );
    }

    #[test]
    fn paths_are_folded_lexically() {
        assert_eq!(
            normalise(Path::new("pipelines/../demo-output/tmp")),
            Path::new("demo-output/tmp")
        );
        assert_eq!(normalise(Path::new("./a/./b")), Path::new("a/b"));
        assert_eq!(normalise(Path::new("../x")), Path::new("../x"));
        assert_eq!(normalise(Path::new("/data/../srv")), Path::new("/srv"));
        assert_eq!(normalise(Path::new("a/..")), Path::new("."));
    }
}
