//! Running a validated pipeline: [`Station::build`] turns component configs into running
//! components and stages into tasks; [`Station::run`] drives them (see [`graph`]);
//! [`check_build`] builds the components only, for `acoupi validate --build`.

mod check;
mod clock;
mod graph;

use std::path::Path;
use std::sync::Arc;

use chrono::Utc;

pub use check::{BuildReport, check_build};
pub use clock::{Clock, SystemClock, TokioClock};
pub use graph::{RunOptions, RunSummary};

use crate::component::Family;
use crate::config::pipeline::{ComponentRef, DetectionStage, StageSpec};
use crate::config::{DeploymentSettings, Pipeline, Settings, Trigger};
use crate::data::{DataError, Deployment, DeviceInfo};
use crate::disk::SystemDisk;
use crate::registry::{BuildContext, BuildError, Built};
use crate::retention::Retention;
use crate::store::{MessageStore, Store, StoreError};
use crate::tasks::{
    DetectionTask, HeartbeatTask, ManagementTask, MessagingTask, Named, RecordingTask, SummaryTask,
};
use crate::telemetry::Telemetry;

/// A stage's task, ready to run.
pub enum Job {
    Recording(RecordingTask),
    Detection(DetectionTask),
    Management(ManagementTask),
    Messaging(MessagingTask),
    Heartbeat(HeartbeatTask),
    Summary(SummaryTask),
}

/// A stage ready to run: its name, task and trigger.
pub struct StageRun {
    pub name: String,
    pub job: Arc<Job>,
    pub trigger: Trigger,
    /// Inputs that may wait while the stage is busy (detection's `queue`; 1 otherwise).
    pub queue: usize,
}

/// Why a station could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{} component{} could not be built:\n{}", .0.len(), if .0.len() == 1 { "" } else { "s" }, .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Build(Vec<BuildError>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid deployment: {0}")]
    Deployment(#[from] DataError),
    #[error("cannot create folder `{}`: {source}", path.display())]
    Folder {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// A management stage waits for a model no detection stage runs: its recordings
    /// would wait in the temp folder for ever.
    #[error(
        "stage `{stage}` has required_models = [\"{model}\"], but no detection stage runs a model of that name (they run: {known}); recordings would wait in the temp folder for ever"
    )]
    UnknownRequiredModel {
        stage: String,
        model: String,
        known: String,
    },
}

/// A built station: every stage with its running components.
pub struct Station {
    pub settings: Settings,
    pub stages: Vec<StageRun>,
    pub store: Arc<dyn Store>,
    /// The station's own counts, shared with its components (see [`crate::telemetry`]).
    pub telemetry: Telemetry,
    /// Recordings to analyse before anything else, per detection stage (by index), found
    /// by [`Station::recover`].
    pub backlog: Vec<(usize, Vec<crate::data::Recording>)>,
}

impl Station {
    /// Builds every component (reporting every failure, not just the first), stores the
    /// deployment and creates the temp folder. The station gets a telemetry of its own.
    pub fn build(
        pipeline: &Pipeline,
        store: Arc<dyn Store>,
        message_store: Arc<dyn MessageStore>,
    ) -> Result<Station, StartError> {
        Station::build_with(pipeline, store, message_store, Telemetry::new())
    }

    /// [`Station::build`] with this telemetry (the one the CLI's logging layer feeds, kept
    /// across reloads of the pipeline).
    pub fn build_with(
        pipeline: &Pipeline,
        store: Arc<dyn Store>,
        message_store: Arc<dyn MessageStore>,
        telemetry: Telemetry,
    ) -> Result<Station, StartError> {
        let settings = pipeline.settings.clone();
        let built = build_components(pipeline, &store, &telemetry, |_| true)?;
        let parts = Parts {
            pipeline,
            built: &built,
        };
        std::fs::create_dir_all(&settings.temp_dir).map_err(|source| StartError::Folder {
            path: settings.temp_dir.clone(),
            source,
        })?;
        ensure_deployment(store.as_ref(), &settings.deployment)?;
        let device_id = device_id(&settings);
        let retention = settings.retention.clone().map(|policy| {
            Arc::new(Retention::new(
                policy,
                settings.recordings_dir.clone(),
                store.clone(),
                Arc::new(SystemDisk),
            ))
        });
        let stages: Vec<StageRun> = pipeline
            .stages
            .iter()
            .map(|stage| {
                let name = stage.name.clone();
                let (job, queue) = match &stage.spec {
                    StageSpec::Recording(s) => (
                        Job::Recording(RecordingTask {
                            stage: name.clone(),
                            recorder: parts.one(&s.recorder, |b| match b {
                                Built::Recorder(c) => Some(c.clone()),
                                _ => None,
                            }),
                            conditions: parts.all(&s.conditions, |b| match b {
                                Built::Condition(c) => Some(c.clone()),
                                _ => None,
                            }),
                            any_conditions: parts.all(&s.any_conditions, |b| match b {
                                Built::Condition(c) => Some(c.clone()),
                                _ => None,
                            }),
                            store: store.clone(),
                            temp_dir: settings.temp_dir.clone(),
                            retention: retention.clone(),
                            device_id: device_id.clone(),
                            timezone: settings.deployment.timezone,
                        }),
                        1,
                    ),
                    StageSpec::Detection(s) => (
                        Job::Detection(parts.detection_task(&name, s, &store, &message_store)),
                        s.queue.get() as usize,
                    ),
                    StageSpec::Management(s) => (
                        Job::Management(ManagementTask {
                            stage: name.clone(),
                            temp_dir: settings.temp_dir.clone(),
                            store: store.clone(),
                            filters: parts.all(&s.filters, |b| match b {
                                Built::SavingFilter(c) => Some(c.clone()),
                                _ => None,
                            }),
                            managers: parts.all(&s.managers, |b| match b {
                                Built::Manager(c) => Some(c.clone()),
                                _ => None,
                            }),
                            required_models: s.required_models.clone(),
                            conditions: parts.all(&s.conditions, |b| match b {
                                Built::Condition(c) => Some(c.clone()),
                                _ => None,
                            }),
                            retention: retention.clone(),
                        }),
                        1,
                    ),
                    StageSpec::Messaging(s) => (
                        Job::Messaging(MessagingTask {
                            stage: name.clone(),
                            message_store: message_store.clone(),
                            messengers: parts.all(&s.messengers, |b| match b {
                                Built::Messenger(c) => Some(c.clone()),
                                _ => None,
                            }),
                            limit: s.max_messages.get() as usize,
                            order: s.order,
                        }),
                        1,
                    ),
                    StageSpec::Heartbeat(s) => (
                        Job::Heartbeat(HeartbeatTask {
                            stage: name.clone(),
                            messengers: parts.all(&s.messengers, |b| match b {
                                Built::Messenger(c) => Some(c.clone()),
                                _ => None,
                            }),
                            metrics: parts.all(&s.metrics, |b| match b {
                                Built::Metric(c) => Some(c.clone()),
                                _ => None,
                            }),
                            device_id: device_id.clone(),
                            store: store.clone(),
                        }),
                        1,
                    ),
                    StageSpec::Summary(s) => (
                        Job::Summary(SummaryTask {
                            stage: name.clone(),
                            summarisers: parts.all(&s.summarisers, |b| match b {
                                Built::Summariser(c) => Some(c.clone()),
                                _ => None,
                            }),
                            message_store: message_store.clone(),
                        }),
                        1,
                    ),
                };
                StageRun {
                    name,
                    job: Arc::new(job),
                    trigger: stage.trigger.clone(),
                    queue,
                }
            })
            .collect();
        check_required_models(&stages)?;
        Ok(Station {
            settings,
            stages,
            store,
            telemetry,
            backlog: Vec::new(),
        })
    }

    /// Start-up recovery ([`crate::recovery`]): reconciles the folders with the store and
    /// queues, for each detection stage, the recordings in the temp folder its model has
    /// not analysed yet. Logs and returns the report.
    pub fn recover(&mut self) -> crate::recovery::RecoveryReport {
        let deployment = match self.store.get_current_deployment() {
            Ok(Some(deployment)) => deployment,
            Ok(None) | Err(_) => Deployment::new(self.settings.deployment.name.clone()),
        };
        let (mut report, waiting) = crate::recovery::reconcile(
            &self.settings.temp_dir,
            &self.settings.recordings_dir,
            self.store.as_ref(),
            &deployment,
            self.settings.deployment.timezone,
        );
        self.backlog.clear();
        for (i, stage) in self.stages.iter().enumerate() {
            let Job::Detection(task) = stage.job.as_ref() else {
                continue;
            };
            let model = task.model.component.name();
            let todo: Vec<_> = waiting
                .iter()
                .filter(|(_, done)| !done.iter().any(|m| m == model))
                .map(|(r, _)| r.clone())
                .collect();
            if !todo.is_empty() {
                report.backlog += todo.len();
                tracing::info!(stage = %stage.name, recordings = todo.len(), "recovery: recordings waiting for this stage are queued first");
                self.backlog.push((i, todo));
            }
        }
        tracing::info!("{report}");
        report
    }
}

/// Builds the components of the named detection stages (all of them when `names` is
/// empty) and wires their tasks, in file order, writing to these stores; builds nothing
/// else and touches no folder or deployment (for `acoupi reprocess`).
pub fn build_detection_tasks(
    pipeline: &Pipeline,
    names: &[String],
    store: Arc<dyn Store>,
    message_store: Arc<dyn MessageStore>,
) -> Result<Vec<DetectionTask>, StartError> {
    let stages: Vec<(&str, &DetectionStage)> = pipeline
        .stages
        .iter()
        .filter_map(|stage| match &stage.spec {
            StageSpec::Detection(s) if names.is_empty() || names.contains(&stage.name) => {
                Some((stage.name.as_str(), s))
            }
            _ => None,
        })
        .collect();
    let wanted: std::collections::BTreeSet<usize> = stages
        .iter()
        .flat_map(|(_, s)| {
            std::iter::once(s.model.id())
                .chain(s.filters.iter().map(|r| r.id()))
                .chain(s.cleaners.iter().map(|r| r.id()))
                .chain(s.messages.iter().map(|r| r.id()))
        })
        .flatten()
        .collect();
    let built = build_components(pipeline, &store, &Telemetry::new(), |id| {
        wanted.contains(&id)
    })?;
    let parts = Parts {
        pipeline,
        built: &built,
    };
    Ok(stages
        .into_iter()
        .map(|(name, s)| parts.detection_task(name, s, &store, &message_store))
        .collect())
}

/// Builds the components `wanted` picks (by index; the others are `None`), reporting
/// every failure, not just the first.
fn build_components(
    pipeline: &Pipeline,
    store: &Arc<dyn Store>,
    telemetry: &Telemetry,
    wanted: impl Fn(usize) -> bool,
) -> Result<Vec<Option<Built>>, StartError> {
    let mut built = Vec::with_capacity(pipeline.components.len());
    let mut errors = Vec::new();
    for (id, instance) in pipeline.components.iter().enumerate() {
        if !wanted(id) {
            built.push(None);
            continue;
        }
        let ctx = BuildContext {
            settings: pipeline.settings.clone(),
            instance: instance.name.clone(),
            store: Some(store.clone()),
            telemetry: telemetry.clone(),
        };
        match instance.settings.build(&ctx) {
            Ok(component) => built.push(Some(component)),
            Err(error) => {
                errors.push(error);
                built.push(None);
            }
        }
    }
    if errors.is_empty() {
        Ok(built)
    } else {
        Err(StartError::Build(errors))
    }
}

/// The pipeline and its built components, for wiring tasks.
struct Parts<'a> {
    pipeline: &'a Pipeline,
    built: &'a [Option<Built>],
}

impl Parts<'_> {
    /// The component a reference resolved to. Validation guarantees the index and the
    /// family, so a mismatch is a bug in the loader, reported loudly.
    fn one<F, T: ?Sized>(
        &self,
        reference: &ComponentRef<F>,
        pick: impl Fn(&Built) -> Option<Arc<T>>,
    ) -> Named<T> {
        let id = reference
            .id()
            .unwrap_or_else(|| panic!("unresolved component reference in a validated pipeline"));
        let instance = &self.pipeline.components[id];
        let component = self.built[id].as_ref().and_then(&pick).unwrap_or_else(|| {
            panic!(
                "component `{}` is not {} after validation",
                instance.name,
                family_of(instance.family)
            )
        });
        Named::new(instance.name.clone(), component)
    }

    fn all<F, T: ?Sized>(
        &self,
        references: &[ComponentRef<F>],
        pick: impl Fn(&Built) -> Option<Arc<T>>,
    ) -> Vec<Named<T>> {
        references.iter().map(|r| self.one(r, &pick)).collect()
    }

    fn detection_task(
        &self,
        name: &str,
        s: &DetectionStage,
        store: &Arc<dyn Store>,
        message_store: &Arc<dyn MessageStore>,
    ) -> DetectionTask {
        DetectionTask {
            stage: name.to_string(),
            model: self.one(&s.model, |b| match b {
                Built::Model(c) => Some(c.clone()),
                _ => None,
            }),
            filters: self.all(&s.filters, |b| match b {
                Built::ProcessingFilter(c) => Some(c.clone()),
                _ => None,
            }),
            cleaners: self.all(&s.cleaners, |b| match b {
                Built::Cleaner(c) => Some(c.clone()),
                _ => None,
            }),
            factories: self.all(&s.messages, |b| match b {
                Built::MessageFactory(c) => Some(c.clone()),
                _ => None,
            }),
            store: store.clone(),
            message_store: message_store.clone(),
        }
    }
}

/// Every model a management stage requires is run by some detection stage (by its
/// `name_model`, e.g. BirdNET's `name` parameter).
fn check_required_models(stages: &[StageRun]) -> Result<(), StartError> {
    let models: Vec<&str> = stages
        .iter()
        .filter_map(|s| match s.job.as_ref() {
            Job::Detection(task) => Some(task.model.component.name()),
            _ => None,
        })
        .collect();
    for stage in stages {
        let Job::Management(task) = stage.job.as_ref() else {
            continue;
        };
        if let Some(model) = task
            .required_models
            .iter()
            .find(|m| !models.contains(&m.as_str()))
        {
            let known = if models.is_empty() {
                "none".to_string()
            } else {
                models
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(StartError::UnknownRequiredModel {
                stage: stage.name.clone(),
                model: model.clone(),
                known,
            });
        }
    }
    Ok(())
}

fn family_of(family: Family) -> String {
    family.with_article()
}

/// Makes the pipeline's `[deployment]` the store's current deployment: kept when the name
/// and location are unchanged, otherwise the current one is ended and a new one started.
pub fn ensure_deployment(
    store: &dyn Store,
    wanted: &DeploymentSettings,
) -> Result<Deployment, StartError> {
    if let Some(current) = store.get_current_deployment()? {
        if current.ended_on.is_none()
            && current.name == wanted.name
            && current.latitude == wanted.latitude
            && current.longitude == wanted.longitude
        {
            return Ok(current);
        }
        if current.ended_on.is_none() {
            let mut ended = current;
            ended.ended_on = Some(Utc::now());
            store.update_deployment(&ended)?;
        }
    }
    let mut deployment = Deployment::new(wanted.name.clone());
    if let (Some(latitude), Some(longitude)) = (wanted.latitude, wanted.longitude) {
        deployment = deployment.with_location(latitude, longitude)?;
    }
    store.store_deployment(&deployment)?;
    tracing::info!(deployment = %deployment.id, name = %deployment.name, "started a new deployment");
    Ok(deployment)
}

/// `[device] id`, else the Raspberry Pi CPU serial, else the host name.
fn device_id(settings: &Settings) -> String {
    if let Some(id) = &settings.device_id {
        return id.clone();
    }
    let read = |p: &str| std::fs::read_to_string(Path::new(p)).ok();
    read("/proc/cpuinfo")
        .and_then(|text| DeviceInfo::from_cpuinfo(&text))
        .map(|info| info.id)
        .or_else(|| read("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()))
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}
