//! The built-in components. Each file holds one component (or a small family): its config
//! struct (the doc comment is its description; fields are its parameters), its
//! `ComponentConfig` implementation and the running component. Adding a component means
//! adding its file and one line in [`registry`].

mod audio;
pub mod audio_probe;
mod batdetect2_ops;
mod batdetect2_spectrogram;
#[cfg(test)]
mod bench_messaging;
pub mod bench_models;
pub mod bench_reprocess;
mod birdnet_range;
mod cleaner_privacy;
mod cleaner_tags;
mod cleaner_threshold;
mod condition_battery;
mod condition_dawn_dusk;
mod condition_free_space;
mod condition_time_window;
mod file_template;
mod filter_dawn_dusk;
mod filter_frequency;
mod filter_sample;
mod filter_species;
mod filter_threshold;
mod filter_time_window;
mod manager_by_score;
mod manager_by_tag;
mod manager_date_folders;
mod message_detections;
mod message_records;
mod messenger_http;
mod messenger_mqtt;
mod metric_station;
mod metric_system;
pub mod microphone;
mod model_band_energy;
mod model_batdetect2;
mod model_birdnet;
mod model_onnx_classifier;
mod processing_min_rms;
mod recorder_microphone;
mod recorder_replay;
mod secret;
pub mod store_duckdb;
mod summarisers;
mod sun;

use acoupi_engine::registry::Registry;

/// Every built-in component type.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    registry
        .register::<recorder_replay::ReplayRecorderConfig>()
        .register::<recorder_microphone::MicrophoneRecorderConfig>()
        .register::<condition_time_window::TimeWindowConditionConfig>()
        .register::<condition_dawn_dusk::DawnDuskConditionConfig>()
        .register::<condition_free_space::FreeSpaceConditionConfig>()
        .register::<condition_battery::BatteryConditionConfig>()
        .register::<model_band_energy::BandEnergyModelConfig>()
        .register::<model_birdnet::BirdnetModelConfig>()
        .register::<model_batdetect2::BatDetect2ModelConfig>()
        .register::<model_onnx_classifier::OnnxClassifierConfig>()
        .register::<processing_min_rms::MinRmsFilterConfig>()
        .register::<cleaner_threshold::ThresholdCleanerConfig>()
        .register::<cleaner_privacy::PrivacyCleanerConfig>()
        .register::<cleaner_tags::TopKCleanerConfig>()
        .register::<cleaner_tags::TagThresholdsCleanerConfig>()
        .register::<filter_threshold::ThresholdSavingFilterConfig>()
        .register::<filter_species::SpeciesFilterConfig>()
        .register::<filter_time_window::TimeWindowSavingFilterConfig>()
        .register::<filter_frequency::FrequencySavingFilterConfig>()
        .register::<filter_dawn_dusk::DawnDuskSavingFilterConfig>()
        .register::<filter_sample::SampleSavingFilterConfig>()
        .register::<manager_date_folders::DateFoldersManagerConfig>()
        .register::<manager_by_tag::ByTagManagerConfig>()
        .register::<manager_by_score::ByScoreManagerConfig>()
        .register::<message_detections::DetectionMessageConfig>()
        .register::<message_detections::ModelOutputMessageConfig>()
        .register::<message_records::RecordingMessageConfig>()
        .register::<message_records::DeploymentMessageConfig>()
        .register::<messenger_http::HttpMessengerConfig>()
        .register::<messenger_mqtt::MqttMessengerConfig>()
        .register::<summarisers::StatisticsSummariserConfig>()
        .register::<summarisers::ThresholdsSummariserConfig>()
        .register::<metric_system::SystemMetricsConfig>()
        .register::<metric_station::StationMetricsConfig>();
    registry
}

/// Entry points for the fuzzers in `fuzz/` and the property tests.
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
        };
        acoupi_engine::registry::BuildContext {
            settings,
            instance: "test".into(),
            store,
        }
    }
}
