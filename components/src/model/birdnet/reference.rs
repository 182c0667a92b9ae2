//! BirdNET's and its range model's reference cases (`models/birdnet/reference/`,
//! `models/birdnet-mdata/reference/`: TFLite's outputs, see each `model.json`) run
//! through the networks as `model.birdnet` loads them, for `acoupi models --verify`.

use acoupi_engine::resources::DataDirs;

use crate::model::birdnet::range::{BUNDLED_RANGE_MODEL, RangeModel};
use crate::model::birdnet::{BUNDLED_LABELS, BUNDLED_MODEL, Network};
use crate::model::reference::{Check, find, read_reference};

/// model.json: tract 0.23.9 was seen 4.2e-5 from the TFLite logits.
pub(crate) const LOGITS_TOLERANCE: f32 = 1e-4;
/// model.json: tract 0.23.9 was seen 1e-5 from TFLite's occurrence scores.
pub(crate) const RANGE_TOLERANCE: f32 = 1e-4;

/// BirdNET's logits of the reference audio against TFLite's (and the same top class).
pub fn verify_birdnet(dirs: &DataDirs) -> Vec<Check> {
    const WHAT: &str = "logits of the 3 s reference audio vs TFLite";
    let run = || -> Result<Check, String> {
        let network = Network::load(&find(dirs, BUNDLED_MODEL)?, &find(dirs, BUNDLED_LABELS)?)
            .map_err(|e| e.to_string())?;
        let audio = read_reference(dirs, "birdnet", "ref_audio_48k_1x144000.f32")?;
        let want = read_reference(dirs, "birdnet", "ref_logits_1x6522.f32")?;
        let got = network
            .logits(&audio)
            .map_err(|e| format!("BirdNET inference failed: {e:#}"))?;
        let mut check = Check::values("birdnet", WHAT, &got, &want, LOGITS_TOLERANCE);
        if check.passed() && argmax(&got) != argmax(&want) {
            check.outcome = Err(format!(
                "the top class is {:?}, TFLite's {:?}",
                argmax(&got),
                argmax(&want)
            ));
        }
        Ok(check)
    };
    vec![run().unwrap_or_else(|reason| Check::failed("birdnet", WHAT, LOGITS_TOLERANCE, reason))]
}

/// The range model's occurrence scores at the reference place and week against TFLite's.
pub fn verify_range(dirs: &DataDirs) -> Vec<Check> {
    const WHAT: &str = "occurrence scores at the reference place and week vs TFLite";
    let run = || -> Result<Check, String> {
        let model =
            RangeModel::load(&find(dirs, BUNDLED_RANGE_MODEL)?).map_err(|e| e.to_string())?;
        let input = read_reference(dirs, "birdnet-mdata", "ref_input_1x3.f32")?;
        let want = read_reference(dirs, "birdnet-mdata", "ref_output_1x6522.f32")?;
        let [latitude, longitude, week] = input[..] else {
            return Err(format!(
                "the reference input has {} values, not 3 (latitude, longitude, week)",
                input.len()
            ));
        };
        let got = model.occurrence(f64::from(latitude), f64::from(longitude), week as i32)?;
        Ok(Check::values(
            "birdnet-mdata",
            WHAT,
            &got,
            &want,
            RANGE_TOLERANCE,
        ))
    };
    vec![
        run()
            .unwrap_or_else(|reason| Check::failed("birdnet-mdata", WHAT, RANGE_TOLERANCE, reason)),
    ]
}

/// The index of the largest value (the first of equals).
fn argmax(values: &[f32]) -> Option<usize> {
    values
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (BirdNET's own check runs in e2e `models::`; its network is slow to load in a
    /// dev build, and `model.birdnet`'s tests compare the same logits.)
    #[test]
    fn the_bundled_range_model_passes_its_reference_case() {
        let dirs = DataDirs::from_process();
        for check in verify_range(&dirs) {
            eprintln!("{check:?}");
            assert!(check.passed(), "{check:?}");
            assert!(check.max_abs_diff.is_some_and(|d| d <= check.tolerance));
        }
    }

    #[test]
    fn a_missing_reference_file_fails_the_check_naming_it() {
        let empty = tempfile::tempdir().unwrap();
        let dirs = DataDirs::new(acoupi_engine::resources::LookupInputs {
            data_dir_var: Some(empty.path().into()),
            ..Default::default()
        });
        let checks = verify_range(&dirs);
        assert_eq!(checks.len(), 1);
        let reason = checks[0].outcome.clone().unwrap_err();
        assert!(reason.contains(BUNDLED_RANGE_MODEL), "{reason}");
    }
}
