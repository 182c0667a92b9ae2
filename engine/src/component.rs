//! The component families (acoupi's documentation, Reference → Components:
//! <https://acoupi.github.io/acoupi/>) as traits, and the `Family` names that the registry and the
//! pipeline file use (`family.kind`, e.g. `recorder.replay`).
//!
//! Every trait is synchronous: components are called from blocking threads by the
//! tasks, never on the async executor, so a slow model or a blocking socket cannot stall
//! the scheduler.

use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::data::{Deployment, Message, Metric, ModelOutput, Recording, Response};

/// What a component reports when it cannot do its job. Tasks log it with the stage and
/// component names and apply their documented fallback.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error("{action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid audio `{path}`: {reason}")]
    Audio { path: PathBuf, reason: String },
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error("store: {0}")]
    Store(String),
    #[error("{0}")]
    Other(String),
}

/// An audio file that could not be read: [`ComponentError::Audio`] with its reason.
impl From<acoupi_audio::AudioError> for ComponentError {
    fn from(error: acoupi_audio::AudioError) -> Self {
        ComponentError::Audio {
            path: error.path,
            reason: error.kind.to_string(),
        }
    }
}

impl ComponentError {
    pub fn io(action: &'static str, path: impl AsRef<Path>, source: std::io::Error) -> Self {
        ComponentError::Io {
            action,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
}

pub type ComponentResult<T> = Result<T, ComponentError>;

/// Makes a Recording whose WAV file exists at `recording.path` (spec: AudioRecorder).
pub trait Recorder: Send + Sync {
    /// Records (or, for replay, provides) one recording for `deployment` into `temp_dir`.
    fn record(&self, deployment: &Deployment, temp_dir: &Path) -> ComponentResult<Recording>;

    /// The stage's conditions said no: a recorder that keeps a stream open between
    /// recordings closes it, dropping audio not yet taken (it is from outside the
    /// conditions). Recording again reopens it. Default: nothing.
    fn pause(&self) {}

    /// The recording device, for GUANO's `Model` (e.g. a microphone's ALSA name).
    /// Default: none (the field is left out).
    fn device(&self) -> Option<String> {
        None
    }
}

/// Says whether a recording should be made now; all conditions must hold.
pub trait RecordingCondition: Send + Sync {
    fn should_record(&self, now: DateTime<Utc>) -> ComponentResult<bool>;
}

/// Says whether the model should run on a recording; all filters must pass.
pub trait ProcessingFilter: Send + Sync {
    fn should_process(&self, recording: &Recording) -> ComponentResult<bool>;
}

/// Turns a recording into a ModelOutput. `name()` is the `name_model` of its outputs.
pub trait Model: Send + Sync {
    fn name(&self) -> &str;
    fn run(&self, recording: &Recording) -> ComponentResult<ModelOutput>;
}

/// Returns a cleaned ModelOutput (fewer detections or tags); cleaners apply in order.
pub trait OutputCleaner: Send + Sync {
    fn clean(&self, output: ModelOutput) -> ComponentResult<ModelOutput>;
}

/// Says whether a recording should be kept; it is kept when ANY saving filter says yes.
pub trait SavingFilter: Send + Sync {
    fn should_save(&self, recording: &Recording, outputs: &[ModelOutput]) -> ComponentResult<bool>;
}

/// Chooses where a kept recording goes: the destination file path (inside the
/// recordings root), or `None` to let the next manager try. The management task moves the
/// file; managers only decide.
pub trait SavingManager: Send + Sync {
    fn save(
        &self,
        recording: &Recording,
        outputs: &[ModelOutput],
    ) -> ComponentResult<Option<PathBuf>>;
}

/// Builds zero, one or many messages from a model output.
pub trait MessageFactory: Send + Sync {
    fn build(&self, output: &ModelOutput) -> ComponentResult<Vec<Message>>;
}

/// A failure to send at all (as opposed to a Response with a non-success status).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SendError(pub String);

/// Delivers a message and reports what the other side said.
pub trait Messenger: Send + Sync {
    fn send(&self, message: &Message) -> Result<Response, SendError>;
}

/// Builds summary messages for the interval ending at `now`.
pub trait Summariser: Send + Sync {
    fn build_summary(&self, now: DateTime<Utc>) -> ComponentResult<Vec<Message>>;
}

/// A metric evaluated when the heartbeat is built, not before.
pub trait MetricSource: Send + Sync {
    fn measure(&self) -> ComponentResult<Vec<Metric>>;
}

/// The component families, named by the prefix of a component type (`model.birdnet` is a
/// [`Family::Model`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Recorder,
    Condition,
    ProcessingFilter,
    Model,
    Cleaner,
    SavingFilter,
    Manager,
    MessageFactory,
    Messenger,
    Summariser,
    Metric,
}

impl Family {
    pub const ALL: [Family; 11] = [
        Family::Recorder,
        Family::Condition,
        Family::ProcessingFilter,
        Family::Model,
        Family::Cleaner,
        Family::SavingFilter,
        Family::Manager,
        Family::MessageFactory,
        Family::Messenger,
        Family::Summariser,
        Family::Metric,
    ];

    /// The prefix used in component types: `recorder`, `condition`, `processing`, `model`,
    /// `cleaner`, `filter` (saving filters), `manager`, `message`, `messenger`,
    /// `summariser`, `metric`.
    pub fn prefix(self) -> &'static str {
        match self {
            Family::Recorder => "recorder",
            Family::Condition => "condition",
            Family::ProcessingFilter => "processing",
            Family::Model => "model",
            Family::Cleaner => "cleaner",
            Family::SavingFilter => "filter",
            Family::Manager => "manager",
            Family::MessageFactory => "message",
            Family::Messenger => "messenger",
            Family::Summariser => "summariser",
            Family::Metric => "metric",
        }
    }

    /// What the family is called in messages ("a recording condition").
    pub fn noun(self) -> &'static str {
        match self {
            Family::Recorder => "recorder",
            Family::Condition => "recording condition",
            Family::ProcessingFilter => "processing filter",
            Family::Model => "model",
            Family::Cleaner => "output cleaner",
            Family::SavingFilter => "saving filter",
            Family::Manager => "saving manager",
            Family::MessageFactory => "message factory",
            Family::Messenger => "messenger",
            Family::Summariser => "summariser",
            Family::Metric => "metric",
        }
    }

    /// The noun with its indefinite article ("an output cleaner").
    pub fn with_article(self) -> String {
        let noun = self.noun();
        let article = if noun.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        format!("{article} {noun}")
    }

    /// The name of the schema definition holding every component of this family.
    pub fn schema_name(self) -> &'static str {
        match self {
            Family::Recorder => "RecorderComponent",
            Family::Condition => "ConditionComponent",
            Family::ProcessingFilter => "ProcessingFilterComponent",
            Family::Model => "ModelComponent",
            Family::Cleaner => "CleanerComponent",
            Family::SavingFilter => "SavingFilterComponent",
            Family::Manager => "ManagerComponent",
            Family::MessageFactory => "MessageFactoryComponent",
            Family::Messenger => "MessengerComponent",
            Family::Summariser => "SummariserComponent",
            Family::Metric => "MetricComponent",
        }
    }

    /// The family of a component type such as `model.birdnet`.
    pub fn of_kind(kind: &str) -> Option<Family> {
        let prefix = kind.split_once('.')?.0;
        Family::ALL.into_iter().find(|f| f.prefix() == prefix)
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.noun())
    }
}
