//! The reference cases shipped with the bundled models (`models/<model>/reference/`: an
//! input and what the original framework computed from it, as raw little-endian f32
//! files), read and compared the one way `acoupi models --verify` and the models' tests
//! both use.

use std::path::Path;

use acoupi_engine::resources::DataDirs;

/// The outcome of one comparison of a model's output with its reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The bundled model (`birdnet`, `birdnet-mdata`, `batdetect2`).
    pub model: &'static str,
    /// What was compared with what (`logits of the reference audio vs TFLite`).
    pub what: String,
    /// The largest absolute difference, when the comparison could be made.
    pub max_abs_diff: Option<f32>,
    /// The largest difference accepted.
    pub tolerance: f32,
    /// `Err` with the reason when the check failed (a difference above the tolerance, a
    /// file missing, a model that does not load).
    pub outcome: Result<(), String>,
}

impl Check {
    /// A check that could not be run: `reason` says why.
    pub(crate) fn failed(model: &'static str, what: &str, tolerance: f32, reason: String) -> Check {
        Check {
            model,
            what: what.to_string(),
            max_abs_diff: None,
            tolerance,
            outcome: Err(reason),
        }
    }

    /// `got` against `want`: passes when both have the same length and differ by at most
    /// `tolerance` everywhere.
    pub(crate) fn values(
        model: &'static str,
        what: &str,
        got: &[f32],
        want: &[f32],
        tolerance: f32,
    ) -> Check {
        match max_abs_difference(got, want) {
            Err(reason) => Check::failed(model, what, tolerance, reason),
            Ok(diff) => Check {
                model,
                what: what.to_string(),
                max_abs_diff: Some(diff),
                tolerance,
                outcome: if diff <= tolerance {
                    Ok(())
                } else {
                    Err(format!(
                        "max abs difference {diff:e} above the tolerance {tolerance:e}"
                    ))
                },
            },
        }
    }

    /// Whether the check passed.
    pub fn passed(&self) -> bool {
        self.outcome.is_ok()
    }
}

/// The largest absolute difference between two outputs of the same length (NaN counts as
/// infinitely far).
pub(crate) fn max_abs_difference(got: &[f32], want: &[f32]) -> Result<f32, String> {
    if got.len() != want.len() {
        return Err(format!(
            "{} values where the reference has {}",
            got.len(),
            want.len()
        ));
    }
    Ok(got
        .iter()
        .zip(want)
        .map(|(a, b)| {
            let diff = (a - b).abs();
            if diff.is_nan() { f32::INFINITY } else { diff }
        })
        .fold(0.0f32, f32::max))
}

/// A raw little-endian f32 file.
pub(crate) fn read_f32(path: &Path) -> Result<Vec<f32>, String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("cannot read the reference file {}: {e}", path.display()))?;
    if bytes.len() % 4 != 0 {
        return Err(format!(
            "the reference file {} is {} bytes, not a whole number of f32 values",
            path.display(),
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// The file of a bundled model's `resource` in `dirs`, as an error string when missing.
pub(crate) fn find(dirs: &DataDirs, resource: &str) -> Result<std::path::PathBuf, String> {
    dirs.find(resource)
        .map(|found| found.path)
        .map_err(|e| e.to_string())
}

/// A reference file of `model` (`models/<model>/reference/<name>`) in `dirs`, read.
pub(crate) fn read_reference(dirs: &DataDirs, model: &str, name: &str) -> Result<Vec<f32>, String> {
    read_f32(&find(dirs, &format!("models/{model}/reference/{name}"))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_measured_and_judged_against_the_tolerance() {
        assert_eq!(max_abs_difference(&[1.0, 2.0], &[1.5, 1.0]), Ok(1.0));
        assert!(max_abs_difference(&[1.0], &[1.0, 2.0]).is_err());
        assert_eq!(max_abs_difference(&[f32::NAN], &[0.0]), Ok(f32::INFINITY));
        let pass = Check::values("m", "x", &[1.0, 2.0], &[1.0, 2.00001], 1e-4);
        assert!(pass.passed() && pass.max_abs_diff.is_some_and(|d| d < 1e-4));
        let fail = Check::values("m", "x", &[1.0, 2.0], &[1.0, 2.1], 1e-4);
        assert!(!fail.passed(), "{fail:?}");
        assert!(!Check::values("m", "x", &[1.0], &[], 1e-4).passed());
    }

    #[test]
    fn a_reference_file_is_whole_f32_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ref.f32");
        std::fs::write(&path, [0, 0, 128, 63, 0, 0, 0, 64]).unwrap();
        assert_eq!(read_f32(&path), Ok(vec![1.0, 2.0]));
        std::fs::write(&path, [0, 0, 128]).unwrap();
        assert!(read_f32(&path).unwrap_err().contains("3 bytes"));
        assert!(
            read_f32(&dir.path().join("gone.f32"))
                .unwrap_err()
                .contains("gone.f32")
        );
    }
}
