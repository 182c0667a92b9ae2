//! The built-in components. Each file holds one component (or a small family): its config
//! struct (the doc comment is its description; fields are its parameters), its
//! `ComponentConfig` implementation and the running component. Adding a component means
//! adding its file and one line in [`registry`].

#[cfg(test)]
mod bench_messaging;
mod cleaner;
mod condition;
mod filter;
mod manager;
mod message;
mod messenger;
mod metric;
mod model;
mod processing;
mod recorder;
pub(crate) mod shared;
mod summariser;

/// Audio capture (cpal), for `acoupi devices` and the microphone tests.
pub mod microphone {
    pub use crate::recorder::microphone::chunker::*;
    pub use crate::recorder::microphone::devices::*;
    pub use crate::recorder::microphone::stream::*;
}
/// Home Assistant's MQTT discovery (`messenger.mqtt`'s `home_assistant`), for `acoupi ha
/// remove`.
pub mod home_assistant {
    pub use crate::messenger::mqtt::home_assistant::{Entities, RemoveError, SENSORS};
    pub use crate::messenger::mqtt::{Removal, remove_home_assistant};
}
/// The bundled models, for `acoupi models`.
pub use model::bundled;
/// The audio probe `acoupi reprocess` uses.
pub use shared::audio_probe;

use acoupi_engine::registry::Registry;

/// Every built-in component type.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    registry
        .register::<recorder::replay::ReplayRecorderConfig>()
        .register::<recorder::microphone::MicrophoneRecorderConfig>()
        .register::<condition::time_window::TimeWindowConditionConfig>()
        .register::<condition::dawn_dusk::DawnDuskConditionConfig>()
        .register::<condition::free_space::FreeSpaceConditionConfig>()
        .register::<condition::battery::BatteryConditionConfig>()
        .register::<model::band_energy::BandEnergyModelConfig>()
        .register::<model::birdnet::BirdnetModelConfig>()
        .register::<model::batdetect2::BatDetect2ModelConfig>()
        .register::<model::onnx_classifier::OnnxClassifierConfig>()
        .register::<processing::min_rms::MinRmsFilterConfig>()
        .register::<cleaner::threshold::ThresholdCleanerConfig>()
        .register::<cleaner::privacy::PrivacyCleanerConfig>()
        .register::<cleaner::top_k::TopKCleanerConfig>()
        .register::<cleaner::tag_thresholds::TagThresholdsCleanerConfig>()
        .register::<filter::threshold::ThresholdSavingFilterConfig>()
        .register::<filter::species::SpeciesFilterConfig>()
        .register::<filter::time_window::TimeWindowSavingFilterConfig>()
        .register::<filter::frequency::FrequencySavingFilterConfig>()
        .register::<filter::dawn_dusk::DawnDuskSavingFilterConfig>()
        .register::<filter::sample::SampleSavingFilterConfig>()
        .register::<manager::date_folders::DateFoldersManagerConfig>()
        .register::<manager::by_tag::ByTagManagerConfig>()
        .register::<manager::by_score::ByScoreManagerConfig>()
        .register::<message::detection::DetectionMessageConfig>()
        .register::<message::model_output::ModelOutputMessageConfig>()
        .register::<message::recording::RecordingMessageConfig>()
        .register::<message::deployment::DeploymentMessageConfig>()
        .register::<messenger::http::HttpMessengerConfig>()
        .register::<messenger::mqtt::MqttMessengerConfig>()
        .register::<summariser::statistics::StatisticsSummariserConfig>()
        .register::<summariser::thresholds::ThresholdsSummariserConfig>()
        .register::<metric::system::SystemMetricsConfig>()
        .register::<metric::station::StationMetricsConfig>();
    registry
}

/// Entry points for the fuzzers in `fuzz/` (the `fuzzing` feature) and the property tests.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz;

#[cfg(test)]
mod testing {
    //! Builders for test data shared by the component tests.
    use acoupi_engine::data::{
        Deployment, Detection, ModelOutput, PredictedTag, PredictionType, Recording, Tag,
    };

    pub fn recording() -> Recording {
        Recording::new(Deployment::new("test site"), 3.0, 48_000).unwrap()
    }

    pub fn detection(score: f64, tags: &[(&str, &str, f64)]) -> Detection {
        let mut d = Detection::new(PredictionType::Event);
        d.detection_score = score;
        d.tags = tags
            .iter()
            .map(|(k, v, s)| PredictedTag::new(Tag::new(*k, *v), *s).unwrap())
            .collect();
        d
    }

    pub fn output(detections: Vec<Detection>) -> ModelOutput {
        ModelOutput::new("test_model", recording(), detections)
    }

    /// A pipeline with one messenger `name` of type `kind` whose keys are `component`, in
    /// a deployment named `deployment`, read as if from `file`. Its component table starts
    /// on line 4, so the first key of `component` is on line 6.
    pub fn messenger_pipeline(
        kind: &str,
        name: &str,
        deployment: &str,
        component: &str,
        file: &str,
    ) -> Result<acoupi_engine::config::Pipeline, acoupi_engine::config::PipelineErrors> {
        let source = format!(
            "[deployment]\nname = \"{deployment}\"\n\n[components.{name}]\ntype = \"{kind}\"\n{component}\n\n\
             [stages.send]\nkind = \"messaging\"\nmessengers = [\"{name}\"]\nschedule = {{ every = \"1min\" }}\n"
        );
        acoupi_engine::config::load_str(std::path::Path::new(file), &source, &crate::registry())
    }

    /// Builds the first component of `pipeline`, which must be a messenger.
    pub fn build_messenger(
        pipeline: &acoupi_engine::config::Pipeline,
    ) -> Result<std::sync::Arc<dyn acoupi_engine::component::Messenger>, String> {
        use acoupi_engine::registry::{BuildContext, Built};
        let instance = &pipeline.components[0];
        let ctx = BuildContext {
            settings: pipeline.settings.clone(),
            instance: instance.name.clone(),
            store: None,
            telemetry: Default::default(),
        };
        match instance.settings.build(&ctx).map_err(|e| e.to_string())? {
            Built::Messenger(messenger) => Ok(messenger),
            other => Err(format!("not a messenger: {other:?}")),
        }
    }

    /// A build context for a station in `base_dir` (UTC, no position), with an optional
    /// store.
    pub fn context(
        base_dir: &std::path::Path,
        store: Option<std::sync::Arc<dyn acoupi_engine::store::Store>>,
    ) -> acoupi_engine::registry::BuildContext {
        let settings = acoupi_engine::config::Settings {
            base_dir: base_dir.to_path_buf(),
            deployment: acoupi_engine::config::DeploymentSettings {
                name: "test".into(),
                latitude: None,
                longitude: None,
                timezone: chrono_tz::UTC,
            },
            store_path: base_dir.join("store.duckdb"),
            temp_dir: base_dir.join("tmp"),
            recordings_dir: base_dir.join("recordings"),
            device_id: None,
            retention: None,
            web: None,
        };
        acoupi_engine::registry::BuildContext {
            settings,
            instance: "test".into(),
            store,
            telemetry: Default::default(),
        }
    }
}
