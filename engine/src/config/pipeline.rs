//! The pipeline file's tables as Rust types: `[deployment]`, `[store]`, `[paths]`,
//! `[device]`, the six stage kinds and references to components. These types are both
//! what the loader deserialises and what the JSON Schema is generated from.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::num::NonZeroU32;
use std::ops::Range;
use std::path::PathBuf;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::values::{
    CronExpr, HumanDuration, Latitude, Located, Longitude, PositiveDuration, ScheduleEvery,
    SpaceAmount, Timezone,
};
use crate::component::Family;

/// `[deployment]`: the monitoring station and where it stands. A changed name or
/// location opens a new deployment in the store.
#[derive(Debug, Clone, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentSection {
    /// Name of the deployment, e.g. the site ("Wytham Woods, plot 3").
    pub name: String,
    /// Latitude in decimal degrees (-90 to 90). Give both latitude and longitude or neither.
    pub latitude: Option<Located<Latitude>>,
    /// Longitude in decimal degrees (-180 to 180).
    pub longitude: Option<Located<Longitude>>,
    /// IANA timezone of the station; schedules, cron expressions and time windows are
    /// evaluated in it. Default: "UTC".
    #[serde(default)]
    #[schemars(default = "utc")]
    pub timezone: Timezone,
}

fn utc() -> &'static str {
    "UTC"
}

/// `[store]`: where everything the station produces is kept.
#[derive(Debug, Clone, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// The store component; `store.duckdb` (one DuckDB file holding the store and the
    /// message store) is the only one.
    #[serde(default, rename = "type")]
    pub kind: StoreKind,
    /// The DuckDB database file (relative to the pipeline file).
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
}

/// The store components.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize, JsonSchema,
)]
pub enum StoreKind {
    #[default]
    #[serde(rename = "store.duckdb")]
    DuckDb,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            kind: StoreKind::default(),
            path: default_store_path(),
        }
    }
}

fn default_store_path() -> PathBuf {
    PathBuf::from("acoupi.duckdb")
}

/// `[paths]`: folders the station writes to (relative to the pipeline file).
#[derive(Debug, Clone, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PathsSection {
    /// Where recorders write new recordings until management moves or deletes them.
    /// On a Raspberry Pi, a RAM-backed folder spares the SD card.
    #[serde(default = "default_temp")]
    pub temp: PathBuf,
    /// Root of the folder tree that saving managers keep recordings in.
    #[serde(default = "default_recordings")]
    pub recordings: PathBuf,
}

impl Default for PathsSection {
    fn default() -> Self {
        PathsSection {
            temp: default_temp(),
            recordings: default_recordings(),
        }
    }
}

fn default_temp() -> PathBuf {
    PathBuf::from("tmp")
}

fn default_recordings() -> PathBuf {
    PathBuf::from("recordings")
}

/// `[device]`: the hardware running the station.
#[derive(Debug, Clone, Default, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceSection {
    /// Device id sent in heartbeats and used as the MQTT client id. Default: the
    /// Raspberry Pi CPU serial where there is one, else the host name.
    pub id: Option<String>,
}

/// `[retention]`: how the kept recordings tree is kept from filling the disk. Without
/// this table nothing is ever deleted from the recordings tree.
///
/// Order of deletion when space is short: recordings without detections, oldest first;
/// then recordings with detections, lowest score first (oldest first among equals).
/// Protected recordings (`protect_species`, `protect_folders`, and each species' best
/// `keep_best`) are never deleted by any rule. A deleted recording keeps its row in the
/// store with no path, so its detections stay queryable.
#[derive(Debug, Clone, Default, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionSection {
    /// Free space to keep on the filesystems of the temp folder and the recordings tree:
    /// "2 GB", "500 MiB" or "10%". Checked before each recording: when below, the oldest
    /// and lowest-value kept recordings are deleted; when still below, the recording is
    /// skipped (and logged) rather than filling the disk.
    pub min_free: Option<Located<SpaceAmount>>,
    /// Kept recordings older than this are deleted ("90d", "52weeks").
    pub max_age: Option<Located<PositiveDuration>>,
    /// Per species (tag value), the best N recordings (highest score) are never deleted.
    pub keep_best: Option<std::num::NonZeroU32>,
    /// The tag key whose values count as species for `keep_best` and `protect_species`
    /// (e.g. "species"). Default: every tag key.
    pub species_key: Option<String>,
    /// Recordings with a detection of any of these tag values are never deleted.
    #[serde(default)]
    pub protect_species: Vec<String>,
    /// Folders (relative to the recordings root, or absolute) whose recordings are never
    /// deleted.
    #[serde(default)]
    pub protect_folders: Vec<PathBuf>,
}

/// `[web]`: the station dashboard, served by `acoupi run` from the station process (see
/// docs/dashboard.md). Without this table no dashboard is served.
#[derive(Debug, Clone, Default, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebSection {
    /// The address and port to listen on, e.g. "127.0.0.1:8080" or "[::1]:8080". Default:
    /// "127.0.0.1:8080" (this machine only). Any other address (e.g. "0.0.0.0:8080")
    /// requires a token (`token_env` or `token_file`).
    pub listen: Option<Located<ListenAddress>>,
    /// The name of the environment variable holding the dashboard's token (the token is
    /// never written in the pipeline file).
    pub token_env: Option<String>,
    /// A file holding the dashboard's token (relative to the pipeline file), readable by
    /// its owner only (`chmod 600`).
    pub token_file: Option<PathBuf>,
    /// With a token: reads (pages, the JSON API) need no token, only changes (reviews,
    /// "keep") do. Default: false (every request needs the token).
    #[serde(default)]
    pub public: bool,
    /// The tag key whose values are the dashboard's species (e.g. "species"). Default:
    /// `species` when the store's models emit it, else the first tag key they emit.
    pub species_key: Option<String>,
}

/// `[web] listen`: an IP address and a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddress(pub std::net::SocketAddr);

/// Where the dashboard listens when `[web] listen` is not given: this machine only.
pub const DEFAULT_LISTEN: std::net::SocketAddr = std::net::SocketAddr::V4(
    std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 8080),
);

impl<'de> Deserialize<'de> for ListenAddress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map(ListenAddress).map_err(|_| {
            de::Error::custom(format!(
                "`{text}` is not an address and port: give an IP address and a port, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\""
            ))
        })
    }
}

impl JsonSchema for ListenAddress {
    fn schema_name() -> Cow<'static, str> {
        "ListenAddress".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "An IP address and a port, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\".",
            "examples": ["127.0.0.1:8080", "0.0.0.0:8080"]
        })
    }
}

/// `schedule = { every = "10s", offset = "5s" }` or `schedule = { cron = "0 6 * * *" }`.
#[derive(Debug, Clone, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Run at every multiple of this interval on the wall clock (10s: at :00, :10, :20...);
    /// at most one day (use `cron` for anything rarer).
    pub every: Option<Located<ScheduleEvery>>,
    /// Shift within each interval, at least 0 and less than `every` (every 10s, offset 5s:
    /// at :05, :15, :25...). Default: 0s.
    pub offset: Option<Located<HumanDuration>>,
    /// Cron expression in the deployment's timezone, instead of `every`.
    pub cron: Option<Located<CronExpr>>,
}

/// Marker types naming a component family in [`ComponentRef`] (for typing and schema).
pub mod of {
    use crate::component::Family;

    /// Implemented by the family markers.
    pub trait FamilyMarker {
        const FAMILY: Family;
    }

    macro_rules! markers {
        ($($name:ident),*) => {$(
            #[derive(Debug, Clone, Copy)]
            pub struct $name;
            impl FamilyMarker for $name { const FAMILY: Family = Family::$name; }
        )*};
    }

    markers!(
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
        Metric
    );
}

/// What a reference names: a `[components.<name>]` table, or a component written inline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefTarget {
    Name(String),
    /// An inline table; the loader reads it again from the span.
    Inline,
}

/// The family-independent part of a [`ComponentRef`].
#[derive(Debug, Clone)]
pub struct RefCore {
    pub span: Range<usize>,
    pub target: RefTarget,
    /// Index into the pipeline's components, set by the loader once resolved.
    pub id: Option<usize>,
}

/// A reference from a stage to a component of family `F`: a name or an inline table.
#[derive(Debug, Clone)]
pub struct ComponentRef<F> {
    pub core: RefCore,
    family: PhantomData<F>,
}

impl<F> ComponentRef<F> {
    /// The resolved component index (always set on a validated pipeline).
    pub fn id(&self) -> Option<usize> {
        self.core.id
    }
}

struct RawRefVisitor;

impl<'de> Visitor<'de> for RawRefVisitor {
    type Value = RefTarget;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a component name or an inline component table")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<RefTarget, E> {
        Ok(RefTarget::Name(v.to_string()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RefTarget, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(RefTarget::Inline)
    }
}

struct RawRef(RefTarget);

impl<'de> Deserialize<'de> for RawRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawRefVisitor).map(RawRef)
    }
}

impl<'de, F> Deserialize<'de> for ComponentRef<F> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = toml::Spanned::<RawRef>::deserialize(deserializer)?;
        let span = spanned.span();
        Ok(ComponentRef {
            core: RefCore {
                span,
                target: spanned.into_inner().0,
                id: None,
            },
            family: PhantomData,
        })
    }
}

impl<F: of::FamilyMarker> JsonSchema for ComponentRef<F> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        format!("{}Ref", F::FAMILY.schema_name()).into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let reference = format!(
            "#{}/{}",
            generator.settings().definitions_path,
            F::FAMILY.schema_name()
        );
        let noun = F::FAMILY.noun();
        json_schema!({
            "anyOf": [
                { "type": "string", "description": format!("The name of a [components.<name>] table holding a {noun}.") },
                { "$ref": reference }
            ]
        })
    }
}

/// The six stage kinds (the tasks of acoupi).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StageKind {
    Recording,
    Detection,
    Management,
    Messaging,
    Heartbeat,
    Summary,
}

impl StageKind {
    pub const ALL: [StageKind; 6] = [
        StageKind::Recording,
        StageKind::Detection,
        StageKind::Management,
        StageKind::Messaging,
        StageKind::Heartbeat,
        StageKind::Summary,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StageKind::Recording => "recording",
            StageKind::Detection => "detection",
            StageKind::Management => "management",
            StageKind::Messaging => "messaging",
            StageKind::Heartbeat => "heartbeat",
            StageKind::Summary => "summary",
        }
    }

    /// Component lists of this kind that must name at least one component.
    pub fn required_lists(self) -> &'static [&'static str] {
        match self {
            StageKind::Messaging | StageKind::Heartbeat => &["messengers"],
            StageKind::Summary => &["summarisers"],
            _ => &[],
        }
    }

    /// The stage kinds this kind may run `after` (whose output it can take).
    ///
    /// detection takes the Recording of a recording stage; management runs after a
    /// recording or detection stage; messaging after detection, management or summary
    /// (which produce messages); recording, heartbeat and summary run on a schedule only.
    pub fn may_follow(self) -> &'static [StageKind] {
        match self {
            StageKind::Recording | StageKind::Heartbeat | StageKind::Summary => &[],
            StageKind::Detection => &[StageKind::Recording],
            StageKind::Management => &[StageKind::Recording, StageKind::Detection],
            StageKind::Messaging => &[
                StageKind::Detection,
                StageKind::Management,
                StageKind::Summary,
            ],
        }
    }
}

impl std::fmt::Display for StageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reference slot in a stage, for the loader to resolve.
pub struct RefSlot<'a> {
    pub field: &'static str,
    pub family: Family,
    pub core: &'a mut RefCore,
}

/// The fields every stage has: its trigger.
pub trait StageFields {
    const KIND: StageKind;
    fn schedule(&self) -> Option<&Located<Schedule>>;
    fn after(&self) -> Option<&Located<String>>;
    /// Every component reference of the stage, with its field name and family.
    fn refs_mut(&mut self) -> Vec<RefSlot<'_>>;
}

fn slots<'a, F: of::FamilyMarker>(
    field: &'static str,
    refs: &'a mut [ComponentRef<F>],
) -> Vec<RefSlot<'a>> {
    refs.iter_mut()
        .map(|r| RefSlot {
            field,
            family: F::FAMILY,
            core: &mut r.core,
        })
        .collect()
}

fn slot<'a, F: of::FamilyMarker>(field: &'static str, r: &'a mut ComponentRef<F>) -> RefSlot<'a> {
    RefSlot {
        field,
        family: F::FAMILY,
        core: &mut r.core,
    }
}

macro_rules! trigger_accessors {
    ($kind:ident) => {
        const KIND: StageKind = StageKind::$kind;
        fn schedule(&self) -> Option<&Located<Schedule>> {
            self.schedule.as_ref()
        }
        fn after(&self) -> Option<&Located<String>> {
            self.after.as_ref()
        }
    };
}

/// A recording stage: asks the conditions, then the recorder makes a Recording, which is
/// stored and handed to stages that run `after` this one.
#[derive(Debug, Clone, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordingStage {
    /// The recorder (`recorder.*`).
    pub recorder: ComponentRef<of::Recorder>,
    /// Recording conditions (`condition.*`); all must hold for a recording to be made.
    #[serde(default)]
    pub conditions: Vec<ComponentRef<of::Condition>>,
    /// More conditions, of which at least one must hold (when any are given), on top of
    /// `conditions`: e.g. `conditions = ["enough_disk"]`, `any_conditions = ["dawn_chorus",
    /// "evening"]` records at dawn or in the evening, and only with disk space left.
    #[serde(default)]
    pub any_conditions: Vec<ComponentRef<of::Condition>>,
    /// When to record.
    pub schedule: Option<Located<Schedule>>,
    /// Not allowed: recording stages run on a schedule.
    pub after: Option<Located<String>>,
}

impl StageFields for RecordingStage {
    trigger_accessors!(Recording);
    fn refs_mut(&mut self) -> Vec<RefSlot<'_>> {
        let mut all = vec![slot("recorder", &mut self.recorder)];
        all.extend(slots("conditions", &mut self.conditions));
        all.extend(slots("any_conditions", &mut self.any_conditions));
        all
    }
}

/// A detection stage: runs the model on each new recording, cleans the output, stores
/// it and turns it into messages.
#[derive(Debug, Clone, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectionStage {
    /// The model (`model.*`).
    pub model: ComponentRef<of::Model>,
    /// Processing filters (`processing.*`); all must pass or the model is not run.
    #[serde(default)]
    pub filters: Vec<ComponentRef<of::ProcessingFilter>>,
    /// Output cleaners (`cleaner.*`), applied in order.
    #[serde(default)]
    pub cleaners: Vec<ComponentRef<of::Cleaner>>,
    /// Message factories (`message.*`); their messages are queued in the store.
    #[serde(default)]
    pub messages: Vec<ComponentRef<of::MessageFactory>>,
    /// How many recordings may wait for the model while it is busy; a recording that
    /// does not fit is logged and left in the temp folder for a later run.
    #[serde(default = "default_queue")]
    pub queue: NonZeroU32,
    /// Not allowed: detection runs `after` a recording stage.
    pub schedule: Option<Located<Schedule>>,
    /// The recording stage whose recordings this stage analyses.
    pub after: Option<Located<String>>,
}

fn default_queue() -> NonZeroU32 {
    NonZeroU32::MIN.saturating_add(15)
}

impl StageFields for DetectionStage {
    trigger_accessors!(Detection);
    fn refs_mut(&mut self) -> Vec<RefSlot<'_>> {
        let mut all = vec![slot("model", &mut self.model)];
        all.extend(slots("filters", &mut self.filters));
        all.extend(slots("cleaners", &mut self.cleaners));
        all.extend(slots("messages", &mut self.messages));
        all
    }
}

/// A management stage: keeps or deletes the recordings waiting in the temp folder.
#[derive(Debug, Clone, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManagementStage {
    /// Saving filters (`filter.*`); a recording is kept when any says yes. With none,
    /// every recording is handed to the managers.
    #[serde(default)]
    pub filters: Vec<ComponentRef<of::SavingFilter>>,
    /// Saving managers (`manager.*`), asked in order; the first that gives a folder wins.
    /// With none, recordings are deleted once managed.
    #[serde(default)]
    pub managers: Vec<ComponentRef<of::Manager>>,
    /// Names of models (their `name_model`) that must have processed a recording before
    /// it is managed.
    #[serde(default)]
    pub required_models: Vec<String>,
    /// Management conditions (`condition.*`, acoupi's `management_conditions`), asked at
    /// each run; all must hold for the run to manage anything. When one says no, every
    /// recording stays in the temp folder for a later run: e.g. move files off the SD card
    /// only inside a daytime window, or only while the recordings disk has room.
    #[serde(default)]
    pub conditions: Vec<ComponentRef<of::Condition>>,
    pub schedule: Option<Located<Schedule>>,
    pub after: Option<Located<String>>,
}

impl StageFields for ManagementStage {
    trigger_accessors!(Management);
    fn refs_mut(&mut self) -> Vec<RefSlot<'_>> {
        let mut all = slots("filters", &mut self.filters);
        all.extend(slots("managers", &mut self.managers));
        all.extend(slots("conditions", &mut self.conditions));
        all
    }
}

/// Order in which unsent messages are sent.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, JsonSchema, serde::Serialize,
)]
#[serde(rename_all = "snake_case")]
pub enum MessageOrder {
    #[default]
    OldestFirst,
    NewestFirst,
}

/// A messaging stage: sends the messages queued in the store through every messenger.
#[derive(Debug, Clone, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MessagingStage {
    /// Messengers (`messenger.*`), at least one.
    pub messengers: Vec<ComponentRef<of::Messenger>>,
    /// At most this many messages per run.
    #[serde(default = "default_max_messages")]
    pub max_messages: NonZeroU32,
    /// Which messages go first.
    #[serde(default)]
    pub order: MessageOrder,
    pub schedule: Option<Located<Schedule>>,
    pub after: Option<Located<String>>,
}

fn default_max_messages() -> NonZeroU32 {
    NonZeroU32::MIN.saturating_add(99)
}

impl StageFields for MessagingStage {
    trigger_accessors!(Messaging);
    fn refs_mut(&mut self) -> Vec<RefSlot<'_>> {
        slots("messengers", &mut self.messengers)
    }
}

/// A heartbeat stage: measures the metrics and sends a heartbeat directly through every
/// messenger (heartbeats are not queued).
#[derive(Debug, Clone, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatStage {
    /// Messengers (`messenger.*`), at least one.
    pub messengers: Vec<ComponentRef<of::Messenger>>,
    /// Metrics (`metric.*`) measured when the heartbeat is built.
    #[serde(default)]
    pub metrics: Vec<ComponentRef<of::Metric>>,
    pub schedule: Option<Located<Schedule>>,
    /// Not allowed: heartbeats run on a schedule.
    pub after: Option<Located<String>>,
}

impl StageFields for HeartbeatStage {
    trigger_accessors!(Heartbeat);
    fn refs_mut(&mut self) -> Vec<RefSlot<'_>> {
        let mut all = slots("messengers", &mut self.messengers);
        all.extend(slots("metrics", &mut self.metrics));
        all
    }
}

/// A summary stage: asks each summariser for summary messages and queues them.
#[derive(Debug, Clone, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SummaryStage {
    /// Summarisers (`summariser.*`), at least one.
    pub summarisers: Vec<ComponentRef<of::Summariser>>,
    pub schedule: Option<Located<Schedule>>,
    /// Not allowed: summaries run on a schedule.
    pub after: Option<Located<String>>,
}

impl StageFields for SummaryStage {
    trigger_accessors!(Summary);
    fn refs_mut(&mut self) -> Vec<RefSlot<'_>> {
        slots("summarisers", &mut self.summarisers)
    }
}

/// A stage of any kind, as written in `[stages.<name>]`.
#[derive(Debug, Clone)]
pub enum StageSpec {
    Recording(RecordingStage),
    Detection(DetectionStage),
    Management(ManagementStage),
    Messaging(MessagingStage),
    Heartbeat(HeartbeatStage),
    Summary(SummaryStage),
}

/// Calls `$body` with `$s` bound to the inner stage struct.
macro_rules! with_stage {
    ($spec:expr, $s:ident => $body:expr) => {
        match $spec {
            StageSpec::Recording($s) => $body,
            StageSpec::Detection($s) => $body,
            StageSpec::Management($s) => $body,
            StageSpec::Messaging($s) => $body,
            StageSpec::Heartbeat($s) => $body,
            StageSpec::Summary($s) => $body,
        }
    };
}

impl StageSpec {
    /// Deserialises the stage table (without its `kind` key) as a stage of `kind`.
    pub fn parse(
        kind: StageKind,
        value: toml::de::ValueDeserializer<'_>,
    ) -> Result<Self, toml::de::Error> {
        Ok(match kind {
            StageKind::Recording => StageSpec::Recording(Deserialize::deserialize(value)?),
            StageKind::Detection => StageSpec::Detection(Deserialize::deserialize(value)?),
            StageKind::Management => StageSpec::Management(Deserialize::deserialize(value)?),
            StageKind::Messaging => StageSpec::Messaging(Deserialize::deserialize(value)?),
            StageKind::Heartbeat => StageSpec::Heartbeat(Deserialize::deserialize(value)?),
            StageKind::Summary => StageSpec::Summary(Deserialize::deserialize(value)?),
        })
    }

    pub fn kind(&self) -> StageKind {
        fn k<S: StageFields>(_: &S) -> StageKind {
            S::KIND
        }
        with_stage!(self, s => k(s))
    }

    pub fn schedule(&self) -> Option<&Located<Schedule>> {
        with_stage!(self, s => s.schedule())
    }

    pub fn after(&self) -> Option<&Located<String>> {
        with_stage!(self, s => s.after())
    }

    pub fn refs_mut(&mut self) -> Vec<RefSlot<'_>> {
        with_stage!(self, s => s.refs_mut())
    }

    /// Adds each stage kind's schema to `generator`; returns (kind, `$ref`) pairs.
    pub fn schemas(generator: &mut SchemaGenerator) -> Vec<(StageKind, String, Schema)> {
        vec![
            (
                StageKind::Recording,
                RecordingStage::schema_name().into(),
                generator.subschema_for::<RecordingStage>(),
            ),
            (
                StageKind::Detection,
                DetectionStage::schema_name().into(),
                generator.subschema_for::<DetectionStage>(),
            ),
            (
                StageKind::Management,
                ManagementStage::schema_name().into(),
                generator.subschema_for::<ManagementStage>(),
            ),
            (
                StageKind::Messaging,
                MessagingStage::schema_name().into(),
                generator.subschema_for::<MessagingStage>(),
            ),
            (
                StageKind::Heartbeat,
                HeartbeatStage::schema_name().into(),
                generator.subschema_for::<HeartbeatStage>(),
            ),
            (
                StageKind::Summary,
                SummaryStage::schema_name().into(),
                generator.subschema_for::<SummaryStage>(),
            ),
        ]
    }
}
