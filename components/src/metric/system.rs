//! `metric.system`: the device's health for heartbeats, measured with `sysinfo` when the
//! heartbeat is built: CPU use, memory, load, uptime, temperatures and free disk space of
//! the station's folders. It owns the choice of metrics, their names and units.
//!
//! ```toml
//! [components.health]
//! type = "metric.system"
//! measure = ["cpu", "memory", "load", "uptime", "temperature", "disk"]   # the default: all
//! ```
//!
//! | group | metrics (unit) |
//! |---|---|
//! | cpu | `cpu_usage` (percent): the average over all cores since the previous heartbeat (since the station started, for the first) |
//! | memory | `consumed_memory`, `free_memory` (available to new programs), `total_memory` (bytes) |
//! | load | `load_1min`, `load_5min`, `load_15min` (processes; 0 where the platform has no load average) |
//! | uptime | `uptime` (seconds since the device booted) |
//! | temperature | `temperature_<sensor>` (celsius), one per sensor the platform exposes (e.g. `temperature_cpu_thermal_temp1` on a Raspberry Pi); none where there is none |
//! | disk | `remaining_storage`, `remaining_storage_temp`, `remaining_storage_store` (bytes available on the file system holding the kept recordings, the temp folder and the store file) |
//!
//! The names `cpu_usage`, `free_memory`, `consumed_memory` and `remaining_storage` are
//! acoupi's, so acoupi dashboards read them unchanged.
//!
//! A group the platform cannot measure is left out and logged (at debug level), never an
//! error: a heartbeat with fewer metrics is better than none.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use acoupi_engine::component::{ComponentResult, MetricSource};
use acoupi_engine::config::values::NonEmpty;
use acoupi_engine::data::Metric;
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};
use sysinfo::{Components, Disks, System};

/// Measure the device's health for heartbeats: CPU use, memory, load, uptime, sensor
/// temperatures and free disk space of the station's folders.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SystemMetricsConfig {
    /// Which groups of metrics to measure.
    #[serde(default = "all_groups")]
    #[schemars(default = "all_groups")]
    pub measure: NonEmpty<MetricGroup>,
}

/// A group of system metrics.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum MetricGroup {
    /// `cpu_usage` (percent).
    Cpu,
    /// `consumed_memory`, `free_memory`, `total_memory` (bytes).
    Memory,
    /// `load_1min`, `load_5min`, `load_15min`.
    Load,
    /// `uptime` (seconds).
    Uptime,
    /// `temperature_<sensor>` (celsius), one per sensor.
    Temperature,
    /// `remaining_storage`, `remaining_storage_temp`, `remaining_storage_store` (bytes).
    Disk,
}

fn all_groups() -> NonEmpty<MetricGroup> {
    use MetricGroup::*;
    NonEmpty(vec![Cpu, Memory, Load, Uptime, Temperature, Disk])
}

impl ComponentConfig for SystemMetricsConfig {
    const KIND: &'static str = "metric.system";

    fn build(&self, ctx: &BuildContext) -> Result<Built, BuildError> {
        let mut system =
            System::new().map_err(|e| format!("cannot read the system's state: {e}"))?;
        // The first CPU sample: the first heartbeat reports the use since now.
        system.refresh_cpu_usage();
        let settings = &ctx.settings;
        Ok(Built::Metric(Arc::new(SystemMetrics {
            groups: self.measure.0.clone(),
            system: Mutex::new(system),
            folders: vec![
                ("remaining_storage", settings.recordings_dir.clone()),
                ("remaining_storage_temp", settings.temp_dir.clone()),
                ("remaining_storage_store", settings.store_path.clone()),
            ],
        })))
    }
}

pub struct SystemMetrics {
    groups: Vec<MetricGroup>,
    /// Kept between heartbeats: CPU use is the change between two refreshes.
    system: Mutex<System>,
    /// The metric name and the path whose file system's free space it reports.
    folders: Vec<(&'static str, PathBuf)>,
}

impl MetricSource for SystemMetrics {
    fn measure(&self) -> ComponentResult<Vec<Metric>> {
        let mut metrics = Vec::new();
        for group in &self.groups {
            match group {
                MetricGroup::Cpu | MetricGroup::Memory => {
                    let Ok(mut system) = self.system.lock() else {
                        tracing::debug!("system metrics: the sampler is poisoned");
                        continue;
                    };
                    if *group == MetricGroup::Cpu {
                        system.refresh_cpu_usage();
                        metrics.push(Metric::new(
                            "cpu_usage",
                            f64::from(system.global_cpu_usage()),
                            "percent",
                        ));
                    } else {
                        system.refresh_memory();
                        metrics.push(Metric::new(
                            "consumed_memory",
                            system.used_memory() as f64,
                            "bytes",
                        ));
                        metrics.push(Metric::new(
                            "free_memory",
                            system.available_memory() as f64,
                            "bytes",
                        ));
                        metrics.push(Metric::new(
                            "total_memory",
                            system.total_memory() as f64,
                            "bytes",
                        ));
                    }
                }
                MetricGroup::Load => match System::load_average() {
                    Ok(load) => {
                        metrics.push(Metric::new("load_1min", load.one, "processes"));
                        metrics.push(Metric::new("load_5min", load.five, "processes"));
                        metrics.push(Metric::new("load_15min", load.fifteen, "processes"));
                    }
                    Err(error) => tracing::debug!(%error, "system metrics: no load average"),
                },
                MetricGroup::Uptime => match System::uptime() {
                    Ok(seconds) => metrics.push(Metric::new("uptime", seconds as f64, "seconds")),
                    Err(error) => tracing::debug!(%error, "system metrics: no uptime"),
                },
                MetricGroup::Temperature => match Components::new_with_refreshed_list() {
                    Ok(components) => {
                        for component in &components {
                            if let Some(celsius) = component.temperature().filter(|t| t.is_finite())
                            {
                                let name =
                                    format!("temperature_{}", metric_name(component.label()));
                                metrics.push(Metric::new(name, f64::from(celsius), "celsius"));
                            }
                        }
                    }
                    Err(error) => tracing::debug!(%error, "system metrics: no temperature sensors"),
                },
                MetricGroup::Disk => match Disks::new_with_refreshed_list() {
                    Ok(disks) => {
                        let mounts: Vec<(PathBuf, u64)> = disks
                            .iter()
                            .map(|d| (d.mount_point().to_path_buf(), d.available_space()))
                            .collect();
                        for (name, path) in &self.folders {
                            match free_space(&mounts, path) {
                                Some(bytes) => {
                                    metrics.push(Metric::new(*name, bytes as f64, "bytes"))
                                }
                                None => {
                                    tracing::debug!(path = %path.display(), "system metrics: no file system found")
                                }
                            }
                        }
                    }
                    Err(error) => tracing::debug!(%error, "system metrics: no disk list"),
                },
            }
        }
        Ok(metrics)
    }
}

/// The free space of the file system mounted deepest above `path` (the nearest existing
/// ancestor is used when `path` does not exist yet).
fn free_space(mounts: &[(PathBuf, u64)], path: &Path) -> Option<u64> {
    let existing = path.ancestors().find_map(|p| p.canonicalize().ok())?;
    mounts
        .iter()
        .filter(|(mount, _)| existing.starts_with(mount))
        .max_by_key(|(mount, _)| mount.components().count())
        .map(|(_, free)| *free)
}

/// A sensor label as a metric name: lower case, runs of other characters as one `_`.
fn metric_name(label: &str) -> String {
    let mut name = String::new();
    for c in label.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c.to_ascii_lowercase());
        } else if !name.ends_with('_') {
            name.push('_');
        }
    }
    let name = name.trim_matches('_');
    if name.is_empty() {
        "sensor".into()
    } else {
        name.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(measure: &[MetricGroup], dir: &Path) -> Arc<dyn MetricSource> {
        let mut ctx = crate::testing::context(dir, None);
        ctx.settings.recordings_dir = dir.join("recordings/not/yet/made");
        match (SystemMetricsConfig {
            measure: NonEmpty(measure.to_vec()),
        })
        .build(&ctx)
        .unwrap()
        {
            Built::Metric(metric) => metric,
            _ => panic!("not a metric"),
        }
    }

    #[test]
    fn every_group_gives_its_metrics_with_units_and_plausible_values() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = build(&all_groups().0, dir.path()).measure().unwrap();
        let get = |name: &str| {
            metrics
                .iter()
                .find(|m| m.name == name)
                .unwrap_or_else(|| panic!("no `{name}` in {metrics:?}"))
        };
        for name in [
            "cpu_usage",
            "consumed_memory",
            "free_memory",
            "total_memory",
            "load_1min",
            "load_5min",
            "load_15min",
            "uptime",
        ] {
            assert!(get(name).value >= 0.0, "{name}");
        }
        assert!((0.0..=100.0).contains(&get("cpu_usage").value));
        assert_eq!(get("cpu_usage").unit, "percent");
        assert!(get("total_memory").value >= get("consumed_memory").value);
        assert!(
            get("total_memory").value > 1e6,
            "a device has more than 1 MB"
        );
        assert_eq!(get("total_memory").unit, "bytes");
        assert!(get("uptime").value > 0.0);
        for name in [
            "remaining_storage",
            "remaining_storage_temp",
            "remaining_storage_store",
        ] {
            assert!(
                get(name).value > 0.0,
                "{name}: the test machine has free space"
            );
            assert_eq!(get(name).unit, "bytes");
        }
        // Temperatures depend on the machine; those present are named and in celsius.
        for metric in metrics
            .iter()
            .filter(|m| m.name.starts_with("temperature_"))
        {
            assert_eq!(metric.unit, "celsius");
        }
        assert!(metrics.iter().all(|m| m.validate().is_ok()), "all finite");
    }

    #[test]
    fn only_the_chosen_groups_are_measured() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = build(&[MetricGroup::Uptime], dir.path()).measure().unwrap();
        assert_eq!(
            metrics.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            ["uptime"]
        );
    }

    #[test]
    fn free_space_uses_the_deepest_mount_above_the_nearest_existing_folder() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let mounts = vec![
            (PathBuf::from("/"), 1),
            (root.clone(), 2),
            (root.join("other"), 3),
        ];
        assert_eq!(free_space(&mounts, &root.join("a/b/c")), Some(2));
        assert_eq!(free_space(&mounts, Path::new("/")), Some(1));
        assert_eq!(free_space(&[], &root), None);
    }

    #[test]
    fn sensor_labels_become_metric_names() {
        assert_eq!(metric_name("cpu_thermal temp1"), "cpu_thermal_temp1");
        assert_eq!(metric_name("Package id 0"), "package_id_0");
        assert_eq!(metric_name("--"), "sensor");
    }
}
