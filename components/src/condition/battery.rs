//! `condition.battery`: record only while the station's battery holds enough charge, read
//! from Linux's power-supply class (`/sys/class/power_supply/<supply>/capacity` and
//! `status`), which UPS HATs, solar charge controllers with a kernel driver and laptops
//! fill in. A solar station then stops recording before the battery runs flat and starts
//! again once the sun has charged it.
//!
//! The supply is chosen when the station starts (a missing one stops it there, naming the
//! supplies there are); its charge is read at each run. A reading that fails counts as
//! "no" (the recording task logs it), so a station never records blind on a battery it
//! cannot see.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use acoupi_engine::component::{ComponentError, ComponentResult, RecordingCondition};
use acoupi_engine::config::values::Percent;
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};
use chrono::{DateTime, Utc};

/// Record only while the battery's charge is at least `min_percent` (Linux power supply
/// class), or, with `while_charging`, while it is charging.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatteryConditionConfig {
    /// The charge below which no recording is made, in percent (0–100).
    pub min_percent: Percent,
    /// The supply's name under the power-supply folder, e.g. "BAT0". Default: the first
    /// (by name) whose `type` is `Battery`.
    pub supply: Option<String>,
    /// Record while the battery is charging too, whatever its charge.
    #[serde(default)]
    pub while_charging: bool,
    /// The power-supply folder (relative to the pipeline file). Default:
    /// "/sys/class/power_supply".
    #[serde(default = "default_folder")]
    #[schemars(default = "default_folder")]
    pub folder: PathBuf,
}

fn default_folder() -> PathBuf {
    PathBuf::from("/sys/class/power_supply")
}

impl ComponentConfig for BatteryConditionConfig {
    const KIND: &'static str = "condition.battery";

    fn build(&self, ctx: &BuildContext) -> Result<Built, BuildError> {
        let folder = ctx.resolve(&self.folder);
        let supply = match &self.supply {
            Some(name) => {
                let path = folder.join(name);
                if !path.join("capacity").is_file() {
                    return Err(BuildError::at(
                        &["supply"],
                        format!(
                            "no battery `{name}`: `{}` does not exist; power supplies there: {}",
                            path.join("capacity").display(),
                            supplies(&folder)
                        ),
                    ));
                }
                path
            }
            None => first_battery(&folder).ok_or_else(|| {
                BuildError::new(format!(
                    "no battery in `{}` (power supplies there: {})",
                    folder.display(),
                    supplies(&folder)
                ))
                .or_at(&["folder"])
            })?,
        };
        Ok(Built::Condition(Arc::new(BatteryCondition {
            supply,
            min_percent: self.min_percent.0,
            while_charging: self.while_charging,
        })))
    }
}

/// The supplies in `folder`, by name, for messages.
fn supplies(folder: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// The first supply (by name) whose `type` is `Battery` and that reports a capacity.
fn first_battery(folder: &Path) -> Option<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(folder)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    paths.sort();
    paths.into_iter().find(|p| {
        read_text(&p.join("type")).is_some_and(|t| t == "Battery") && p.join("capacity").is_file()
    })
}

fn read_text(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|t| t.trim().to_string())
}

pub struct BatteryCondition {
    supply: PathBuf,
    min_percent: f64,
    while_charging: bool,
}

impl RecordingCondition for BatteryCondition {
    fn should_record(&self, _: DateTime<Utc>) -> ComponentResult<bool> {
        let path = self.supply.join("capacity");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ComponentError::io("cannot read the battery charge", &path, e))?;
        let charge: f64 = text.trim().parse().map_err(|_| {
            ComponentError::Other(format!(
                "`{}` holds `{}`, not a percentage",
                path.display(),
                text.trim()
            ))
        })?;
        if self.while_charging
            && read_text(&self.supply.join("status")).is_some_and(|s| s == "Charging")
        {
            return Ok(true);
        }
        if charge < self.min_percent {
            tracing::info!(battery = %self.supply.display(), charge, min_percent = self.min_percent, "battery too low to record");
        }
        Ok(charge >= self.min_percent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A power-supply folder with a mains adapter and a battery at `charge` %, `status`.
    fn sysfs(charge: &str, status: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let ac = dir.path().join("AC");
        std::fs::create_dir_all(&ac).unwrap();
        std::fs::write(ac.join("type"), "Mains\n").unwrap();
        let battery = dir.path().join("BAT0");
        std::fs::create_dir_all(&battery).unwrap();
        std::fs::write(battery.join("type"), "Battery\n").unwrap();
        std::fs::write(battery.join("capacity"), format!("{charge}\n")).unwrap();
        std::fs::write(battery.join("status"), format!("{status}\n")).unwrap();
        dir
    }

    fn condition(dir: &Path, extra: &str) -> Result<Arc<dyn RecordingCondition>, String> {
        let json = format!(
            r#"{{"min_percent": 40, "folder": {:?}{extra}}}"#,
            dir.display().to_string()
        );
        let config: BatteryConditionConfig =
            serde_json::from_str(&json).map_err(|e| e.to_string())?;
        match config
            .build(&crate::testing::context(dir, None))
            .map_err(|e| e.to_string())?
        {
            Built::Condition(condition) => Ok(condition),
            _ => Err("not a condition".into()),
        }
    }

    #[test]
    fn records_at_or_above_the_minimum_charge_or_while_charging() {
        // (capacity, status, while_charging, records)
        let cases = [
            ("85", "Discharging", "", true),
            ("40", "Discharging", "", true),
            ("39", "Discharging", "", false),
            ("12", "Charging", "", false),
            ("12", "Charging", r#", "while_charging": true"#, true),
            ("12", "Discharging", r#", "while_charging": true"#, false),
        ];
        for (charge, status, extra, records) in cases {
            let dir = sysfs(charge, status);
            let condition = condition(dir.path(), extra).unwrap();
            assert_eq!(
                condition.should_record(Utc::now()).unwrap(),
                records,
                "{charge} % {status} {extra}"
            );
        }
    }

    #[test]
    fn a_missing_battery_stops_the_station_and_an_unreadable_charge_says_no() {
        let dir = sysfs("50", "Full");
        let error = condition(dir.path(), r#", "supply": "BAT1""#)
            .err()
            .unwrap();
        assert!(
            error.contains("no battery `BAT1`") && error.contains("power supplies there: AC, BAT0"),
            "{error}"
        );
        std::fs::remove_dir_all(dir.path().join("BAT0")).unwrap();
        let error = condition(dir.path(), "").err().unwrap();
        assert!(
            error.contains("no battery in") && error.contains("AC"),
            "{error}"
        );

        let dir = sysfs("50", "Full");
        let condition = condition(dir.path(), "").unwrap();
        std::fs::write(dir.path().join("BAT0/capacity"), "unknown").unwrap();
        assert!(
            condition
                .should_record(Utc::now())
                .unwrap_err()
                .to_string()
                .contains("not a percentage")
        );
        std::fs::remove_file(dir.path().join("BAT0/capacity")).unwrap();
        assert!(condition.should_record(Utc::now()).is_err());
        let out_of_range: Result<BatteryConditionConfig, _> =
            serde_json::from_str(r#"{"min_percent": 140}"#);
        assert!(
            out_of_range
                .unwrap_err()
                .to_string()
                .contains("out of range")
        );
    }
}
