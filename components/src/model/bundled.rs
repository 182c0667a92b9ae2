//! The models acoupi ships (`models/<name>/` in a data dir, see `acoupi_engine::resources`):
//! which default files each has, its licence, and its reference checks. `acoupi models`
//! lists them and, with `--verify`, runs the checks.

use acoupi_engine::resources::{DataDirs, Found, NotFound};

pub use crate::model::reference::Check;
use crate::model::{batdetect2, birdnet};

/// One bundled model.
#[derive(Debug, Clone, Copy)]
pub struct BundledModel {
    /// Its folder under `models/`.
    pub name: &'static str,
    /// The component (and key) that uses it by default.
    pub used_by: &'static str,
    /// Its default files, relative to a data dir.
    pub files: &'static [&'static str],
    /// Runs its reference case through the model code as the component loads it.
    verify: fn(&DataDirs) -> Vec<Check>,
}

/// Every bundled model, in the order `acoupi models` lists them.
pub const BUNDLED_MODELS: &[BundledModel] = &[
    BundledModel {
        name: "birdnet",
        used_by: "model.birdnet",
        files: &[birdnet::BUNDLED_MODEL, birdnet::BUNDLED_LABELS],
        verify: birdnet::reference::verify_birdnet,
    },
    BundledModel {
        name: "birdnet-mdata",
        used_by: "model.birdnet range_filter",
        files: &[birdnet::range::BUNDLED_RANGE_MODEL],
        verify: birdnet::reference::verify_range,
    },
    BundledModel {
        name: "batdetect2",
        used_by: "model.batdetect2",
        files: &[batdetect2::BUNDLED_MODEL, batdetect2::BUNDLED_LABELS],
        verify: batdetect2::reference::verify,
    },
];

/// A model's licence: its name and the licence file beside the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Licence {
    /// The licence's name (`CC BY-NC-SA 4.0`), from `model.json` or else the first line
    /// of the licence file.
    pub name: String,
    /// The licence file (`LICENSE` or `LICENSE.md`), when found.
    pub file: Option<Found>,
}

impl BundledModel {
    /// Each default file, found in `dirs` or not.
    pub fn find_files(&self, dirs: &DataDirs) -> Vec<Result<Found, NotFound>> {
        self.files.iter().map(|file| dirs.find(file)).collect()
    }

    /// The model's licence as its folder states it (`None` when neither `model.json` nor
    /// a licence file is found).
    pub fn licence(&self, dirs: &DataDirs) -> Option<Licence> {
        let file = ["LICENSE", "LICENSE.md"]
            .iter()
            .find_map(|name| dirs.find(&format!("models/{}/{name}", self.name)).ok());
        let from_json = dirs
            .find(&format!("models/{}/model.json", self.name))
            .ok()
            .and_then(|found| std::fs::read_to_string(found.path).ok())
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|json| json.get("licence")?.as_str().map(licence_name));
        let from_file = || {
            let text = std::fs::read_to_string(&file.as_ref()?.path).ok()?;
            let first = text.lines().map(str::trim).find(|l| !l.is_empty())?;
            Some(first.trim_start_matches('#').trim().to_string())
        };
        let name = from_json.or_else(from_file)?;
        Some(Licence { name, file })
    }

    /// Runs the model's reference case (its `reference/` files) through the model code,
    /// the files found in `dirs`.
    pub fn verify(&self, dirs: &DataDirs) -> Vec<Check> {
        (self.verify)(dirs)
    }
}

/// A licence name without its remarks: `CC BY-NC-SA 4.0 (see LICENSE); BirdNET by …`
/// gives `CC BY-NC-SA 4.0`.
fn licence_name(text: &str) -> String {
    let end = text.find([';', '(']).unwrap_or(text.len());
    text[..end].trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_file_and_licence_is_in_the_source_tree() {
        let dirs = DataDirs::from_process();
        let licences: Vec<String> = BUNDLED_MODELS
            .iter()
            .map(|model| {
                for found in model.find_files(&dirs) {
                    let found = found.unwrap();
                    assert!(
                        found.path.starts_with(format!(
                            "{}/models/{}",
                            found.data_dir.display(),
                            model.name
                        )),
                        "{found:?}"
                    );
                }
                let licence = model.licence(&dirs).unwrap();
                assert!(licence.file.is_some(), "{}: {licence:?}", model.name);
                licence.name
            })
            .collect();
        assert_eq!(
            licences,
            ["CC BY-NC-SA 4.0", "CC BY-NC-SA 4.0", "CC BY-NC 4.0"]
        );
    }

    #[test]
    fn a_licence_is_named_from_its_file_without_a_model_json() {
        let tmp = tempfile::tempdir().unwrap();
        let folder = tmp.path().join("models/batdetect2");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(
            folder.join("LICENSE.md"),
            "\n# Creative Commons Attribution-NonCommercial 4.0 International\n\ntext",
        )
        .unwrap();
        let dirs = DataDirs::new(acoupi_engine::resources::LookupInputs {
            data_dir_var: Some(tmp.path().into()),
            ..Default::default()
        });
        let licence = BUNDLED_MODELS[2].licence(&dirs).unwrap();
        assert_eq!(
            licence.name,
            "Creative Commons Attribution-NonCommercial 4.0 International"
        );
        assert_eq!(licence.file.unwrap().path, folder.join("LICENSE.md"));
        assert_eq!(BUNDLED_MODELS[0].licence(&dirs), None);
        assert_eq!(
            licence_name("CC BY-NC 4.0 (see LICENSE.md)"),
            "CC BY-NC 4.0"
        );
    }
}
