//! The component registry: every component type (`family.kind`) with its config struct,
//! its JSON Schema and its build function.
//!
//! A component is three things side by side in its own file: a config struct
//! (`serde::Deserialize + schemars::JsonSchema`, `deny_unknown_fields`, doc comments as
//! descriptions), an implementation of [`ComponentConfig`], and one registration line
//! (`registry.register::<MyConfig>()`). The struct's doc comment is the component's
//! description in `acoupi components` and in editors.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;

use crate::component::{
    Family, MessageFactory, Messenger, MetricSource, Model, OutputCleaner, ProcessingFilter,
    Recorder, RecordingCondition, SavingFilter, SavingManager, Summariser,
};
use crate::config::Settings;
use crate::config::diagnostics::KeyProblem;
use crate::store::Store;
use crate::telemetry::Telemetry;

/// A built, running component, by family.
#[derive(Clone)]
pub enum Built {
    Recorder(Arc<dyn Recorder>),
    Condition(Arc<dyn RecordingCondition>),
    ProcessingFilter(Arc<dyn ProcessingFilter>),
    Model(Arc<dyn Model>),
    Cleaner(Arc<dyn OutputCleaner>),
    SavingFilter(Arc<dyn SavingFilter>),
    Manager(Arc<dyn SavingManager>),
    MessageFactory(Arc<dyn MessageFactory>),
    Messenger(Arc<dyn Messenger>),
    Summariser(Arc<dyn Summariser>),
    Metric(Arc<dyn MetricSource>),
}

impl Built {
    pub fn family(&self) -> Family {
        match self {
            Built::Recorder(_) => Family::Recorder,
            Built::Condition(_) => Family::Condition,
            Built::ProcessingFilter(_) => Family::ProcessingFilter,
            Built::Model(_) => Family::Model,
            Built::Cleaner(_) => Family::Cleaner,
            Built::SavingFilter(_) => Family::SavingFilter,
            Built::Manager(_) => Family::Manager,
            Built::MessageFactory(_) => Family::MessageFactory,
            Built::Messenger(_) => Family::Messenger,
            Built::Summariser(_) => Family::Summariser,
            Built::Metric(_) => Family::Metric,
        }
    }
}

impl fmt::Debug for Built {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Built({})", self.family())
    }
}

/// What a build function may use: the pipeline's global settings (which also anchor
/// relative paths) and the station's store.
#[derive(Clone)]
pub struct BuildContext {
    /// `[deployment]`, `[paths]`, `[store]`, `[device]` as loaded.
    pub settings: Settings,
    /// The instance name (`[components.<name>]`, or `<stage>.<field>` when inline).
    pub instance: String,
    /// The station's store (summarisers read detections from it); `None` when components
    /// are built outside a station.
    pub store: Option<Arc<dyn Store>>,
    /// The station's own counts (errors, audio gaps): recorders add to it, metrics read
    /// it. Outside a station, a fresh one nobody reads.
    pub telemetry: Telemetry,
}

impl fmt::Debug for BuildContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildContext")
            .field("instance", &self.instance)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl BuildContext {
    /// Resolves a path from a config relative to the pipeline file.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.settings.resolve(path)
    }
}

/// Why a component could not be built (a missing file, an unreadable model, a device that
/// is not there, ...): the component (filled in by the registry), the field at fault where
/// it is known (so `acoupi validate --build` can point at its key) and the reason.
#[derive(Debug, thiserror::Error)]
pub struct BuildError {
    /// The instance name (see [`BuildContext::instance`]); set by the registry.
    pub instance: String,
    /// `family.kind`; set by the registry.
    pub kind: &'static str,
    /// The key path of the field at fault inside the component's table (`["model"]`,
    /// `["tls", "ca"]`), empty when no one field is.
    pub field: Vec<String>,
    pub reason: BuildFailure,
}

/// What went wrong in a build.
#[derive(Debug, thiserror::Error)]
pub enum BuildFailure {
    /// The component reads the station's store, which is not open (components built
    /// outside a station, as `acoupi validate --build` does).
    #[error("it needs the station's store, which is not open here")]
    NeedsStore,
    /// Anything else, in words.
    #[error("{0}")]
    Other(String),
}

impl BuildError {
    /// A failure of the component as a whole.
    pub fn new(reason: impl Into<String>) -> Self {
        BuildError {
            instance: String::new(),
            kind: "",
            field: Vec::new(),
            reason: BuildFailure::Other(reason.into()),
        }
    }

    /// A failure due to the field at `path` (`&["model"]`, `&["tls", "ca"]`).
    pub fn at(path: &[&str], reason: impl Into<String>) -> Self {
        BuildError {
            field: path.iter().map(|k| k.to_string()).collect(),
            ..BuildError::new(reason)
        }
    }

    /// The component needs the station's store, which is not open.
    pub fn needs_store() -> Self {
        BuildError {
            reason: BuildFailure::NeedsStore,
            ..BuildError::new("")
        }
    }

    /// Points an error without a field at the field at `path`.
    pub fn or_at(mut self, path: &[&str]) -> Self {
        if self.field.is_empty() {
            self.field = path.iter().map(|k| k.to_string()).collect();
        }
        self
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.instance.is_empty() {
            write!(
                f,
                "cannot build component `{}` ({}): ",
                self.instance, self.kind
            )?;
        }
        if !self.field.is_empty() {
            write!(f, "`{}`: ", self.field.join("."))?;
        }
        write!(f, "{}", self.reason)
    }
}

/// Free text during the move to typed errors: a failure of the component as a whole.
impl From<String> for BuildError {
    fn from(reason: String) -> Self {
        BuildError::new(reason)
    }
}

impl From<&str> for BuildError {
    fn from(reason: &str) -> Self {
        BuildError::new(reason)
    }
}

/// Implemented by each component's config struct.
pub trait ComponentConfig:
    DeserializeOwned + JsonSchema + fmt::Debug + Send + Sync + 'static
{
    /// `family.kind`, e.g. `recorder.replay`.
    const KIND: &'static str;

    /// Builds the running component: opens what it needs (model files, devices,
    /// folders, secrets) and checks what only they can tell.
    fn build(&self, ctx: &BuildContext) -> Result<Built, BuildError>;

    /// Checks across fields that no single value type can make (e.g. a password over a
    /// plain connection), run by the loader while the pipeline is validated; each problem
    /// is reported at the key it names. Default: none.
    fn check(&self) -> Vec<KeyProblem> {
        Vec::new()
    }
}

/// A parsed component config, type-erased.
pub trait ComponentSettings: fmt::Debug + Send + Sync {
    fn kind(&self) -> &'static str;
    fn build(&self, ctx: &BuildContext) -> Result<Built, BuildError>;
    /// See [`ComponentConfig::check`].
    fn check(&self) -> Vec<KeyProblem>;
    /// The config itself, for a command that reads one kind's settings (`acoupi ha
    /// remove` reads `messenger.mqtt`'s).
    fn as_any(&self) -> &dyn std::any::Any;
}

impl<T: ComponentConfig> ComponentSettings for T {
    fn kind(&self) -> &'static str {
        T::KIND
    }

    fn build(&self, ctx: &BuildContext) -> Result<Built, BuildError> {
        let built = ComponentConfig::build(self, ctx).map_err(|error| BuildError {
            instance: ctx.instance.clone(),
            kind: T::KIND,
            ..error
        })?;
        debug_assert_eq!(Some(built.family()), Family::of_kind(T::KIND));
        Ok(built)
    }

    fn check(&self) -> Vec<KeyProblem> {
        ComponentConfig::check(self)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

type ParseFn =
    fn(toml::de::ValueDeserializer<'_>) -> Result<Box<dyn ComponentSettings>, toml::de::Error>;

/// One registered component type.
pub struct ComponentType {
    pub kind: &'static str,
    pub family: Family,
    /// The Rust name of the config struct (its schema definition name).
    pub schema_name: String,
    schema: fn(&mut SchemaGenerator) -> Schema,
    parse: ParseFn,
}

impl ComponentType {
    /// Adds this type's config schema to `generator` and returns the `$ref` to it.
    pub fn schema(&self, generator: &mut SchemaGenerator) -> Schema {
        (self.schema)(generator)
    }

    /// Deserialises a component table (without its `type` key).
    pub fn parse(
        &self,
        value: toml::de::ValueDeserializer<'_>,
    ) -> Result<Box<dyn ComponentSettings>, toml::de::Error> {
        (self.parse)(value)
    }

    /// The one-line description: the first paragraph of the config struct's doc comment.
    pub fn description(&self) -> String {
        let schema = schemars::SchemaGenerator::default().into_root_schema_for_inline(self);
        let text = schema
            .get("description")
            .and_then(|d| d.as_str())
            .unwrap_or("");
        let paragraph = text.split("\n\n").next().unwrap_or("");
        paragraph.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// The config's full JSON Schema, inlined (for `acoupi components --json`).
    /// The JSON Schema of the config's parameters; always with `properties` (empty for a
    /// component without parameters), so tools can list them uniformly.
    pub fn parameters_schema(&self) -> serde_json::Value {
        let mut schema = schemars::SchemaGenerator::default()
            .into_root_schema_for_inline(self)
            .to_value();
        if let Some(object) = schema.as_object_mut() {
            object
                .entry("properties")
                .or_insert_with(|| serde_json::json!({}));
        }
        schema
    }

    /// The names of the config's parameters (for unknown-key hints).
    pub fn parameter_names(&self) -> Vec<String> {
        let schema = self.parameters_schema();
        schema
            .get("properties")
            .and_then(|p| p.as_object())
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    }
}

trait InlineRoot {
    fn into_root_schema_for_inline(self, ty: &ComponentType) -> Schema;
}

impl InlineRoot for SchemaGenerator {
    fn into_root_schema_for_inline(mut self, ty: &ComponentType) -> Schema {
        let reference = ty.schema(&mut self);
        let defs = self.take_definitions(true);
        let mut schema = defs
            .get(&ty.schema_name)
            .cloned()
            .map(Schema::try_from)
            .and_then(Result::ok)
            .unwrap_or(reference);
        if !defs.is_empty() {
            let others: serde_json::Map<_, _> = defs
                .into_iter()
                .filter(|(name, _)| name != &ty.schema_name)
                .collect();
            if !others.is_empty() {
                schema.insert("$defs".into(), serde_json::Value::Object(others));
            }
        }
        schema
    }
}

fn parse_as<T: ComponentConfig>(
    value: toml::de::ValueDeserializer<'_>,
) -> Result<Box<dyn ComponentSettings>, toml::de::Error> {
    let config: T = serde::Deserialize::deserialize(value)?;
    Ok(Box::new(config))
}

fn schema_of<T: ComponentConfig>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// Every component type the engine knows, by `family.kind`.
#[derive(Default)]
pub struct Registry {
    types: BTreeMap<&'static str, ComponentType>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a component type. Panics on a programming error: a `KIND` without a
    /// known family prefix, or the same `KIND` registered twice.
    pub fn register<T: ComponentConfig>(&mut self) -> &mut Self {
        let family = Family::of_kind(T::KIND)
            .unwrap_or_else(|| panic!("component kind `{}` has no known family prefix", T::KIND));
        let entry = ComponentType {
            kind: T::KIND,
            family,
            schema_name: T::schema_name().into_owned(),
            schema: schema_of::<T>,
            parse: parse_as::<T>,
        };
        assert!(
            self.types.insert(T::KIND, entry).is_none(),
            "`{}` registered twice",
            T::KIND
        );
        self
    }

    pub fn get(&self, kind: &str) -> Option<&ComponentType> {
        self.types.get(kind)
    }

    /// All types, sorted by kind.
    pub fn types(&self) -> impl Iterator<Item = &ComponentType> {
        self.types.values()
    }

    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.types.keys().copied()
    }
}
