//! Loads a pipeline file: parses the TOML with spans, deserialises each table on its own
//! (so one mistake does not hide the next), resolves component references, checks the
//! triggers and the `after` graph, and returns either a validated [`Pipeline`] or every
//! problem found, each pointing at its line and column.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::diagnostics::{Code, PipelineErrors, Problem, ReadError, suggestion};
use super::pipeline::{
    DetectionStage, DeviceSection, HeartbeatStage, ManagementStage, MessagingStage, PathsSection,
    RecordingStage, RefTarget, RetentionSection, Schedule, StageKind, StageSpec, StoreSection,
    SummaryStage, WebSection,
};
use super::values::{CronExpr, Located};
use super::{DeploymentSection, Settings};
use crate::component::Family;
use crate::registry::{ComponentSettings, Registry};

/// A component instance of a validated pipeline.
#[derive(Debug)]
pub struct ComponentInstance {
    /// `[components.<name>]`, or `<stage>.<field>` for an inline component.
    pub name: String,
    pub kind: &'static str,
    pub family: Family,
    pub settings: Box<dyn ComponentSettings>,
    /// Where the component is declared: its name in `[components.<name>]`, or the inline
    /// table.
    pub span: Range<usize>,
    /// The span of each key of its table (nested tables' keys by their path), so a build
    /// failure can point at the field it names.
    pub keys: Vec<(Vec<String>, Range<usize>)>,
}

impl ComponentInstance {
    /// Where a build failure of the field at `path` points: that key, else the component.
    pub fn span_of(&self, path: &[String]) -> Range<usize> {
        self.keys
            .iter()
            .find(|(key, _)| key.as_slice() == path)
            .map_or_else(|| self.span.clone(), |(_, span)| span.clone())
    }
}

/// When a stage runs.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per stage, built once: boxing the cron expression buys nothing"
)]
pub enum Trigger {
    /// On wall-clock multiples of `every`, shifted by `offset` (acoupi's aligned schedule).
    Every { every: Duration, offset: Duration },
    /// On a cron expression in the deployment's timezone.
    Cron(CronExpr),
    /// On each output of the stage at this index.
    After(usize),
}

/// A stage of a validated pipeline.
#[derive(Debug)]
pub struct Stage {
    pub name: String,
    pub spec: StageSpec,
    pub trigger: Trigger,
}

/// A validated pipeline, ready to build and run.
#[derive(Debug)]
pub struct Pipeline {
    pub path: PathBuf,
    /// The file's text, for pointing at a component whose build fails.
    pub source: Arc<str>,
    pub settings: Settings,
    pub components: Vec<ComponentInstance>,
    /// In file order.
    pub stages: Vec<Stage>,
}

impl Pipeline {
    /// A one-line summary: stages with their triggers, and components.
    pub fn summary(&self) -> String {
        let stages: Vec<String> = self
            .stages
            .iter()
            .map(|stage| {
                let trigger = match &stage.trigger {
                    Trigger::Every { every, offset } if offset.is_zero() => {
                        format!("every {}", humantime::format_duration(*every))
                    }
                    Trigger::Every { every, offset } => format!(
                        "every {} +{}",
                        humantime::format_duration(*every),
                        humantime::format_duration(*offset)
                    ),
                    Trigger::Cron(cron) => format!("cron \"{}\"", cron.text),
                    Trigger::After(i) => format!("after {}", self.stages[*i].name),
                };
                format!("{} ({}, {trigger})", stage.name, stage.spec.kind())
            })
            .collect();
        let named = self
            .components
            .iter()
            .filter(|c| !c.name.contains('.'))
            .count();
        format!(
            "{} stage{}: {}; {} component{} ({} inline)",
            self.stages.len(),
            if self.stages.len() == 1 { "" } else { "s" },
            stages.join(", "),
            self.components.len(),
            if self.components.len() == 1 { "" } else { "s" },
            self.components.len() - named,
        )
    }
}

/// Why a pipeline could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("{0}")]
    Invalid(PipelineErrors),
}

/// The largest pipeline file read, in bytes (1 MiB). A pipeline is a few KiB; anything
/// larger is a mistake (a recording or a log given as the pipeline) and is refused before
/// it is parsed, so a huge or endless file cannot exhaust memory.
pub const MAX_PIPELINE_BYTES: usize = 1024 * 1024;

/// Reads and validates a pipeline file (at most [`MAX_PIPELINE_BYTES`] are read).
pub fn load(path: &Path, registry: &Registry) -> Result<Pipeline, LoadError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| ReadError::new(path, e))?;
    let mut bytes = Vec::new();
    file.take(MAX_PIPELINE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ReadError::new(path, e))?;
    if bytes.len() > MAX_PIPELINE_BYTES {
        return Err(LoadError::Invalid(too_large(path)));
    }
    let source = String::from_utf8(bytes).map_err(|e| {
        ReadError::new(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        )
    })?;
    load_str(path, &source, registry).map_err(LoadError::Invalid)
}

/// The one problem of a pipeline file over [`MAX_PIPELINE_BYTES`].
fn too_large(path: &Path) -> PipelineErrors {
    let problem = Problem::new(
        Code::FileTooLarge,
        None,
        format!(
            "the pipeline file is larger than {} KiB ({MAX_PIPELINE_BYTES} bytes) and was not read: a pipeline is a few KiB of TOML",
            MAX_PIPELINE_BYTES / 1024
        ),
    )
    .with_help("check that the path names the pipeline file");
    PipelineErrors {
        path: path.to_path_buf(),
        source: Arc::from(""),
        problems: vec![problem],
    }
}

/// Validates pipeline text; `path` names the file in messages and anchors relative paths.
/// Text longer than [`MAX_PIPELINE_BYTES`] is refused unparsed (`file-too-large`).
pub fn load_str(
    path: &Path,
    source: &str,
    registry: &Registry,
) -> Result<Pipeline, PipelineErrors> {
    if source.len() > MAX_PIPELINE_BYTES {
        return Err(too_large(path));
    }
    let mut loader = Loader {
        registry,
        problems: Vec::new(),
        components: Vec::new(),
    };
    let pipeline = loader.load(path, source);
    match pipeline {
        Some(pipeline) if loader.problems.is_empty() => Ok(pipeline),
        _ => {
            let mut problems = loader.problems;
            problems.sort_by_key(|p| p.span.as_ref().map_or(0, |s| s.start));
            problems.dedup();
            Err(PipelineErrors {
                path: path.to_path_buf(),
                source: Arc::from(source),
                problems,
            })
        }
    }
}

const TOP_LEVEL: [&str; 8] = [
    "deployment",
    "store",
    "paths",
    "device",
    "retention",
    "web",
    "components",
    "stages",
];

struct Loader<'r> {
    registry: &'r Registry,
    problems: Vec<Problem>,
    components: Vec<ComponentInstance>,
}

/// A stage while it is being checked: its parsed spec and its raw table.
struct Pending<'a, 'i> {
    name: String,
    name_span: Range<usize>,
    raw: &'a Spanned<DeValue<'i>>,
    spec: StageSpec,
}

impl Loader<'_> {
    fn problem(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    /// `[web]`: at most one token source, and one at all unless `listen` is this machine
    /// (`span`: the table, where a problem without a key of its own points). A problem is
    /// reported and the table dropped.
    fn check_web(&mut self, web: WebSection, span: Range<usize>) -> Option<WebSection> {
        if web.token_env.is_some() && web.token_file.is_some() {
            self.problem(
                Problem::new(
                    Code::InvalidValue,
                    span,
                    "[web] takes `token_env` or `token_file`, not both",
                )
                .with_help("keep one of them"),
            );
            return None;
        }
        if let Some(problem) = web
            .token_env
            .clone()
            .map(|env| crate::secret::Secret::from_keys(Some(env), None))
            .or_else(|| {
                web.token_file
                    .clone()
                    .map(|file| crate::secret::Secret::from_keys(None, Some(file)))
            })
            .and_then(Result::err)
        {
            self.problem(Problem::new(
                Code::InvalidValue,
                span,
                format!("[web] {problem}"),
            ));
            return None;
        }
        let no_token = web.token_env.is_none() && web.token_file.is_none();
        if let Some(listen) = &web.listen
            && no_token
            && !listen.get().0.ip().is_loopback()
        {
            self.problem(
                Problem::new(
                    Code::WebTokenRequired,
                    listen.span(),
                    format!(
                        "[web] listens on {}, which other machines can reach, without a token",
                        listen.get().0
                    ),
                )
                .with_help(
                    "add `token_env = \"NAME\"` or `token_file = \"path\"` (a file only its owner can read), or listen on 127.0.0.1",
                ),
            );
            return None;
        }
        Some(web)
    }

    fn load(&mut self, path: &Path, source: &str) -> Option<Pipeline> {
        let (root, errors) = DeTable::parse_recoverable(source);
        if !errors.is_empty() {
            self.syntax_errors(source, &errors);
            return None;
        }
        let root = root.get_ref();
        for (key, _) in root.iter() {
            if !TOP_LEVEL.contains(&key.get_ref().as_ref()) {
                self.unknown_key(key, "at the top level", TOP_LEVEL.iter().copied());
            }
        }

        let deployment: Option<DeploymentSection> = match root.get("deployment") {
            Some(value) => self.section(value),
            None => {
                self.problem(
                    Problem::new(
                        Code::MissingKey,
                        0..0,
                        "the pipeline has no [deployment] table",
                    )
                    .with_help("add [deployment] with at least `name = \"...\"`"),
                );
                None
            }
        };
        if let Some(d) = &deployment
            && let (Some(lat), None) | (None, Some(lat)) = (
                d.latitude.as_ref().map(Located::span),
                d.longitude.as_ref().map(Located::span),
            )
        {
            self.problem(
                Problem::new(
                    Code::InvalidValue,
                    lat,
                    "latitude and longitude must be given together",
                )
                .with_help("give both, or neither"),
            );
        }
        let store: Option<StoreSection> = root
            .get("store")
            .map_or(Some(StoreSection::default()), |v| self.section(v));
        let paths: Option<PathsSection> = root
            .get("paths")
            .map_or(Some(PathsSection::default()), |v| self.section(v));
        // Where a problem with the folders points: `temp`, else the `[paths]` table.
        let paths_span = root.get("paths").map(|v| match v.get_ref() {
            DeValue::Table(table) => table.get("temp").map_or(v.span(), |temp| temp.span()),
            _ => v.span(),
        });
        let device: Option<DeviceSection> = root
            .get("device")
            .map_or(Some(DeviceSection::default()), |v| self.section(v));
        let retention: Option<Option<RetentionSection>> = root
            .get("retention")
            .map_or(Some(None), |v| self.section(v).map(Some));
        let web: Option<Option<WebSection>> = match root.get("web") {
            None => Some(None),
            Some(value) => self
                .section(value)
                .map(|web| self.check_web(web, value.span())),
        };

        // Components that failed to parse are `None`: their problems are already reported,
        // so references to them are not reported again.
        let mut names: HashMap<String, Option<usize>> = HashMap::new();
        if let Some(table) = root
            .get("components")
            .and_then(|v| self.table(v, "[components]"))
        {
            for (key, value) in table.iter() {
                let name = key.get_ref().to_string();
                let id = self.component(&name, key.span(), value).map(|instance| {
                    self.components.push(instance);
                    self.components.len() - 1
                });
                names.insert(name, id);
            }
        }

        let mut pending = Vec::new();
        // Stages whose table has a problem (already reported): `after` may name them.
        let mut broken: HashSet<String> = HashSet::new();
        if let Some(table) = root.get("stages").and_then(|v| self.table(v, "[stages]")) {
            for (key, value) in table.iter() {
                match self.stage(key, value) {
                    Some(stage) => pending.push(stage),
                    None => {
                        broken.insert(key.get_ref().to_string());
                    }
                }
            }
        }
        pending.sort_by_key(|s| s.name_span.start);
        if pending.is_empty() && root.get("stages").is_none() {
            self.problem(
                Problem::new(Code::MissingKey, 0..0, "the pipeline has no [stages]").with_help(
                    "add at least one stage, e.g. [stages.record] with kind = \"recording\"",
                ),
            );
        }

        for stage in &mut pending {
            self.resolve_refs(stage, &names);
        }
        let triggers = self.triggers(&pending, &broken);

        let deployment = deployment?;
        let settings = Settings::new(path, deployment, store?, paths?, device?, retention?, web?);
        // Retention and recovery treat everything under the recordings folder as kept:
        // recordings still waiting for their models there would be taken for kept ones.
        if settings.temp_dir.starts_with(&settings.recordings_dir)
            || settings.recordings_dir.starts_with(&settings.temp_dir)
        {
            self.problem(
                Problem::new(
                    Code::InvalidValue,
                    paths_span,
                    format!(
                        "[paths] temp (`{}`) and recordings (`{}`) must be separate folders, neither inside the other",
                        settings.temp_dir.display(),
                        settings.recordings_dir.display()
                    ),
                )
                .with_help("e.g. temp = \"tmp\" and recordings = \"recordings\" (the defaults)"),
            );
        }
        let stages = pending
            .into_iter()
            .zip(triggers)
            .map(|(p, trigger)| {
                trigger.map(|trigger| Stage {
                    name: p.name,
                    spec: p.spec,
                    trigger,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Pipeline {
            path: path.to_path_buf(),
            source: Arc::from(source),
            settings,
            components: std::mem::take(&mut self.components),
            stages,
        })
    }

    /// Reports TOML syntax errors. A table defined twice makes the parser report every key
    /// of its second definition too; those follow-on errors are dropped.
    fn syntax_errors(&mut self, source: &str, errors: &[toml::de::Error]) {
        let mut duplicate_section_end = 0;
        for error in errors {
            let span = error.span().unwrap_or(0..0);
            let duplicate = error.message().contains("duplicate key");
            if !duplicate {
                self.problem(Problem::new(Code::TomlSyntax, span, error.message().trim()));
                continue;
            }
            if span.start < duplicate_section_end {
                continue;
            }
            let name = source.get(span.clone()).unwrap_or("").trim_matches('"');
            let line_start = source[..span.start.min(source.len())]
                .rfind('\n')
                .map_or(0, |i| i + 1);
            if source[line_start..].starts_with('[') {
                duplicate_section_end = source[span.end..]
                    .find("\n[")
                    .map_or(source.len(), |i| span.end + i);
            }
            self.problem(
                Problem::new(
                    Code::DuplicateName,
                    span,
                    format!("`{name}` is defined twice"),
                )
                .with_help("each table and key may appear once; rename or merge them"),
            );
        }
    }

    fn unknown_key<'a>(
        &mut self,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        place: &str,
        allowed: impl IntoIterator<Item = &'a str> + Clone,
    ) {
        let name = key.get_ref();
        self.problem(
            Problem::new(
                Code::UnknownKey,
                key.span(),
                format!("unknown key `{name}` {place}"),
            )
            .with_help_opt(suggestion(name, allowed)),
        );
    }

    fn table<'a, 'i>(
        &mut self,
        value: &'a Spanned<DeValue<'i>>,
        what: &str,
    ) -> Option<&'a DeTable<'i>> {
        match value.get_ref() {
            DeValue::Table(table) => Some(table),
            other => {
                self.problem(Problem::new(
                    Code::TypeMismatch,
                    value.span(),
                    format!("{what} must be a table, found {}", other.type_str()),
                ));
                None
            }
        }
    }

    /// Deserialises a top-level section, reporting its problems.
    fn section<T: serde::de::DeserializeOwned + JsonSchema>(
        &mut self,
        value: &Spanned<DeValue<'_>>,
    ) -> Option<T> {
        self.deserialize_with(value.clone(), &property_names::<T>(), "", |v| {
            T::deserialize(v)
        })
    }

    /// Removes the discriminating key (`type` or `kind`) and returns its string value.
    fn take_tag<'i>(
        &mut self,
        value: &Spanned<DeValue<'i>>,
        tag: &str,
        owner: &str,
        owner_span: Range<usize>,
    ) -> Option<(String, Range<usize>, Spanned<DeValue<'i>>)> {
        let table = self.table(value, owner)?;
        let Some(tag_value) = table.get(tag) else {
            self.problem(Problem::new(
                Code::MissingKey,
                owner_span,
                format!("{owner} has no `{tag}`"),
            ));
            return None;
        };
        let Some(text) = tag_value.get_ref().as_str() else {
            self.problem(Problem::new(
                Code::TypeMismatch,
                tag_value.span(),
                format!(
                    "`{tag}` must be a string, found {}",
                    tag_value.get_ref().type_str()
                ),
            ));
            return None;
        };
        let mut rest = table.clone();
        rest.remove(tag);
        Some((
            text.to_string(),
            tag_value.span(),
            Spanned::new(value.span(), DeValue::Table(rest)),
        ))
    }

    /// Parses a component table (named or inline).
    fn component(
        &mut self,
        name: &str,
        name_span: Range<usize>,
        value: &Spanned<DeValue<'_>>,
    ) -> Option<ComponentInstance> {
        let owner = format!("component `{name}`");
        let (kind, kind_span, rest) = self.take_tag(value, "type", &owner, name_span.clone())?;
        let Some(ty) = self.registry.get(&kind) else {
            self.problem(
                Problem::new(
                    Code::UnknownComponentType,
                    kind_span,
                    format!("unknown component type `{kind}`"),
                )
                .with_help(
                    match super::diagnostics::did_you_mean(&kind, self.registry.kinds()) {
                        Some(close) => format!("did you mean `{close}`?"),
                        None => "run `acoupi components` to list the component types".to_string(),
                    },
                ),
            );
            return None;
        };
        let place = format!("in {owner} ({kind})");
        let settings =
            self.deserialize_with(rest, &ty.parameter_names(), &place, |v| ty.parse(v))?;
        let problems = settings.check();
        if !problems.is_empty() {
            for problem in problems {
                let span = key_span(value, &problem.key).unwrap_or_else(|| value.span());
                self.problem(
                    Problem::new(problem.code, span, format!("{} {place}", problem.message))
                        .with_help_opt(problem.help),
                );
            }
            return None;
        }
        let mut keys = Vec::new();
        key_spans(value, &mut Vec::new(), &mut keys);
        Some(ComponentInstance {
            name: name.to_string(),
            kind: ty.kind,
            family: ty.family,
            settings,
            span: name_span,
            keys,
        })
    }

    /// Reports every key of `value` not in `allowed` (each with a did-you-mean), then
    /// parses the rest. Serde stops at the first bad value, so after each error the entry
    /// it points into is removed and the table parsed again, until it parses or an error
    /// cannot be pinned to an entry: every bad value of a table is reported at once.
    fn deserialize_with<T>(
        &mut self,
        value: Spanned<DeValue<'_>>,
        allowed: &[String],
        place: &str,
        parse: impl Fn(ValueDeserializer<'_>) -> Result<T, toml::de::Error>,
    ) -> Option<T> {
        let span = value.span();
        if !value.get_ref().is_table() {
            return match parse(ValueDeserializer::from(value)) {
                Ok(parsed) => Some(parsed),
                Err(error) => {
                    self.problem(Problem::from_toml(&error, span));
                    None
                }
            };
        }
        let DeValue::Table(mut table) = value.into_inner() else {
            return None;
        };
        let unknown: Vec<_> = table
            .iter()
            .filter(|(key, _)| !allowed.iter().any(|a| a == key.get_ref().as_ref()))
            .map(|(key, _)| key.clone())
            .collect();
        for key in &unknown {
            self.unknown_key(key, place, allowed.iter().map(String::as_str));
            table.remove(key.get_ref().as_ref());
        }
        let mut removed: Vec<String> = Vec::new();
        loop {
            match parse(ValueDeserializer::from(Spanned::new(
                span.clone(),
                DeValue::Table(table.clone()),
            ))) {
                Ok(parsed) => return (unknown.is_empty() && removed.is_empty()).then_some(parsed),
                Err(error) => {
                    let mut problem = Problem::from_toml(&error, span.clone());
                    if !place.is_empty()
                        && matches!(
                            problem.code,
                            Code::MissingKey | Code::TypeMismatch | Code::InvalidValue
                        )
                    {
                        problem.message = format!("{} {place}", problem.message);
                    }
                    let consequence = removed
                        .iter()
                        .any(|k| problem.message.contains(&format!("`{k}`")));
                    if !consequence {
                        self.problem(problem.clone());
                    }
                    let at = problem.span.as_ref().map_or(span.start, |s| s.start);
                    let culprit = table
                        .iter()
                        .find(|(k, v)| k.span().contains(&at) || v.span().contains(&at))
                        .map(|(k, _)| k.get_ref().to_string());
                    match culprit {
                        Some(key) if !consequence => {
                            table.remove(key.as_str());
                            removed.push(key);
                        }
                        _ => return None,
                    }
                }
            }
        }
    }

    fn stage<'a, 'i>(
        &mut self,
        key: &Spanned<std::borrow::Cow<'i, str>>,
        value: &'a Spanned<DeValue<'i>>,
    ) -> Option<Pending<'a, 'i>> {
        let name = key.get_ref().to_string();
        let owner = format!("stage `{name}`");
        let (kind_text, kind_span, rest) = self.take_tag(value, "kind", &owner, key.span())?;
        let Some(kind) = StageKind::ALL.into_iter().find(|k| k.as_str() == kind_text) else {
            self.problem(
                Problem::new(
                    Code::UnknownStageKind,
                    kind_span,
                    format!("unknown stage kind `{kind_text}`"),
                )
                .with_help_opt(suggestion(
                    &kind_text,
                    StageKind::ALL.map(StageKind::as_str),
                )),
            );
            return None;
        };
        for field in kind.required_lists() {
            if let Some(list) = value
                .get_ref()
                .get(*field)
                .filter(|l| l.get_ref().as_array().is_some_and(|a| a.is_empty()))
            {
                self.problem(Problem::new(
                    Code::EmptyList,
                    list.span(),
                    format!("`{field}` of {owner} must name at least one component"),
                ));
            }
        }
        let allowed = stage_property_names(kind);
        let spec = self.deserialize_with(rest, &allowed, &format!("in {owner} ({kind})"), |v| {
            StageSpec::parse(kind, v)
        })?;
        Some(Pending {
            name,
            name_span: key.span(),
            raw: value,
            spec,
        })
    }

    fn resolve_refs(
        &mut self,
        stage: &mut Pending<'_, '_>,
        names: &HashMap<String, Option<usize>>,
    ) {
        let raw = stage.raw;
        let mut seen: HashSet<(&'static str, String)> = HashSet::new();
        let mut inline_components = Vec::new();
        for slot in stage.spec.refs_mut() {
            match &slot.core.target {
                RefTarget::Name(name) => {
                    if !seen.insert((slot.field, name.clone())) {
                        self.problem(Problem::new(
                            Code::DuplicateReference,
                            slot.core.span.clone(),
                            format!(
                                "`{name}` is listed twice in `{}` of stage `{}`",
                                slot.field, stage.name
                            ),
                        ));
                    }
                    match names.get(name) {
                        None => {
                            let same_family: Vec<&str> = names
                                .iter()
                                .filter(|(_, i)| {
                                    i.is_some_and(|i| self.components[i].family == slot.family)
                                })
                                .map(|(n, _)| n.as_str())
                                .collect();
                            self.problem(
                                Problem::new(
                                    Code::UndefinedReference,
                                    slot.core.span.clone(),
                                    format!(
                                        "no component named `{name}` (`{}` of stage `{}` takes {})",
                                        slot.field,
                                        stage.name,
                                        slot.family.with_article()
                                    ),
                                )
                                .with_help(
                                    match suggestion(name, same_family.iter().copied()) {
                                        Some(hint) => hint,
                                        None => format!(
                                            "define it in [components.{name}] or write it inline"
                                        ),
                                    },
                                ),
                            );
                        }
                        Some(None) => {}
                        Some(&Some(id)) => {
                            let target = &self.components[id];
                            if target.family != slot.family {
                                self.problem(Problem::new(
                                    Code::WrongFamily,
                                    slot.core.span.clone(),
                                    format!(
                                        "component `{name}` is {} ({}), but `{}` of stage `{}` takes {}",
                                        target.family.with_article(), target.kind, slot.field, stage.name, slot.family.with_article()
                                    ),
                                ));
                            } else {
                                slot.core.id = Some(id);
                            }
                        }
                    }
                }
                RefTarget::Inline => {
                    let Some(value) = find_by_span(raw, &slot.core.span) else {
                        continue;
                    };
                    let name = format!("{}.{}", stage.name, slot.field);
                    let Some(instance) = self.component(&name, slot.core.span.clone(), value)
                    else {
                        continue;
                    };
                    if instance.family != slot.family {
                        self.problem(Problem::new(
                            Code::WrongFamily,
                            slot.core.span.clone(),
                            format!(
                                "inline component is {} ({}), but `{}` of stage `{}` takes {}",
                                instance.family.with_article(),
                                instance.kind,
                                slot.field,
                                stage.name,
                                slot.family.with_article()
                            ),
                        ));
                        continue;
                    }
                    inline_components.push(instance);
                    slot.core.id = Some(self.components.len() + inline_components.len() - 1);
                }
            }
        }
        self.components.extend(inline_components);
    }

    /// Checks every stage's trigger; returns one per stage (None where it is invalid).
    /// `broken` names stages that exist but did not parse: following one is not reported.
    fn triggers(
        &mut self,
        stages: &[Pending<'_, '_>],
        broken: &HashSet<String>,
    ) -> Vec<Option<Trigger>> {
        let index: BTreeMap<&str, usize> = stages
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect();
        let mut triggers = Vec::with_capacity(stages.len());
        for stage in stages {
            let kind = stage.spec.kind();
            let trigger = match (stage.spec.schedule(), stage.spec.after()) {
                (Some(_), Some(after)) => {
                    self.problem(
                        Problem::new(
                            Code::TwoTriggers,
                            after.span(),
                            format!("stage `{}` has both `schedule` and `after`", stage.name),
                        )
                        .with_help("a stage runs on exactly one trigger; remove one"),
                    );
                    None
                }
                (None, None) => {
                    self.problem(
                        Problem::new(Code::NoTrigger, stage.name_span.clone(), format!("stage `{}` has no trigger", stage.name))
                            .with_help(if kind.may_follow().is_empty() {
                                "add `schedule = { every = \"10s\" }` or `schedule = { cron = \"...\" }`".to_string()
                            } else {
                                format!("add `after = \"<{} stage>\"`", kind.may_follow()[0])
                            }),
                    );
                    None
                }
                (Some(schedule), None) => {
                    if kind == StageKind::Detection {
                        self.problem(
                            Problem::new(Code::ScheduleNotAllowed, schedule.span(), format!("detection stage `{}` cannot run on a schedule", stage.name))
                                .with_help("a detection stage analyses each new recording: use `after = \"<recording stage>\"`"),
                        );
                        None
                    } else {
                        self.schedule(schedule)
                    }
                }
                (None, Some(after)) => self.after(stage, after, kind, &index, broken, stages),
            };
            triggers.push(trigger);
        }
        self.cycles(stages, &index);
        triggers
    }

    fn schedule(&mut self, schedule: &Located<Schedule>) -> Option<Trigger> {
        let s = schedule.get();
        match (&s.every, &s.cron) {
            (Some(_), Some(cron)) => {
                self.problem(
                    Problem::new(
                        Code::InvalidSchedule,
                        cron.span(),
                        "a schedule has either `every` or `cron`, not both",
                    )
                    .with_help("remove one"),
                );
                None
            }
            (None, None) => {
                self.problem(
                    Problem::new(
                        Code::InvalidSchedule,
                        schedule.span(),
                        "a schedule needs `every` or `cron`",
                    )
                    .with_help("e.g. `schedule = { every = \"10s\" }`"),
                );
                None
            }
            (None, Some(cron)) => {
                if let Some(offset) = &s.offset {
                    self.problem(
                        Problem::new(
                            Code::InvalidSchedule,
                            offset.span(),
                            "`offset` applies to `every`, not to `cron`",
                        )
                        .with_help("shift the cron expression instead"),
                    );
                    return None;
                }
                Some(Trigger::Cron(cron.get().clone()))
            }
            (Some(every), None) => {
                let every_value = every.get().0;
                let offset = s.offset.as_ref().map_or(Duration::ZERO, |o| o.get().0);
                if offset >= every_value {
                    let span = s.offset.as_ref().map_or(schedule.span(), Located::span);
                    self.problem(
                        Problem::new(
                            Code::OffsetTooLarge,
                            span,
                            format!(
                                "offset {} must be less than every {}",
                                humantime::format_duration(offset),
                                humantime::format_duration(every_value)
                            ),
                        )
                        .with_help(
                            "the offset shifts runs within each interval: 0 <= offset < every",
                        ),
                    );
                    return None;
                }
                Some(Trigger::Every {
                    every: every_value,
                    offset,
                })
            }
        }
    }

    fn after(
        &mut self,
        stage: &Pending<'_, '_>,
        after: &Located<String>,
        kind: StageKind,
        index: &BTreeMap<&str, usize>,
        broken: &HashSet<String>,
        stages: &[Pending<'_, '_>],
    ) -> Option<Trigger> {
        let upstream_name = after.get();
        if kind.may_follow().is_empty() {
            self.problem(
                Problem::new(
                    Code::IncompatibleAfter,
                    after.span(),
                    format!("a {kind} stage cannot run `after` another stage"),
                )
                .with_help(
                    "use `schedule = { every = \"...\" }` or `schedule = { cron = \"...\" }`",
                ),
            );
            return None;
        }
        if broken.contains(upstream_name.as_str()) {
            // The stage exists; its own problems are reported.
            return None;
        }
        let Some(&upstream) = index.get(upstream_name.as_str()) else {
            self.problem(
                Problem::new(
                    Code::UndefinedStage,
                    after.span(),
                    format!("no stage named `{upstream_name}`"),
                )
                .with_help_opt(suggestion(upstream_name, index.keys().copied())),
            );
            return None;
        };
        let upstream_kind = stages[upstream].spec.kind();
        if !kind.may_follow().contains(&upstream_kind) {
            let allowed: Vec<_> = kind.may_follow().iter().map(|k| k.as_str()).collect();
            self.problem(
                Problem::new(
                    Code::IncompatibleAfter,
                    after.span(),
                    format!(
                        "a {kind} stage cannot run after `{upstream_name}`, a {upstream_kind} stage"
                    ),
                )
                .with_help(format!(
                    "a {kind} stage may run after a {} stage",
                    allowed.join(" or ")
                )),
            );
            return None;
        }
        if upstream == index[stage.name.as_str()] {
            // Reported as a cycle.
            return None;
        }
        Some(Trigger::After(upstream))
    }

    /// Reports each `after` cycle once, at the first stage of the cycle in file order.
    fn cycles(&mut self, stages: &[Pending<'_, '_>], index: &BTreeMap<&str, usize>) {
        let next = |i: usize| {
            stages[i]
                .spec
                .after()
                .and_then(|a| index.get(a.get().as_str()).copied())
        };
        let mut reported = HashSet::new();
        for start in 0..stages.len() {
            let mut path = vec![start];
            let mut current = start;
            while let Some(n) = next(current) {
                if let Some(pos) = path.iter().position(|&p| p == n) {
                    let cycle = &path[pos..];
                    let first = *cycle.iter().min().unwrap_or(&n);
                    if reported.insert(first) {
                        let rotate = cycle.iter().position(|&c| c == first).unwrap_or(0);
                        let mut names: Vec<&str> = cycle[rotate..]
                            .iter()
                            .chain(&cycle[..rotate])
                            .map(|&i| stages[i].name.as_str())
                            .collect();
                        names.push(stages[first].name.as_str());
                        let span = stages[first]
                            .spec
                            .after()
                            .map_or(stages[first].name_span.clone(), Located::span);
                        self.problem(
                            Problem::new(
                                Code::AfterCycle,
                                span,
                                format!(
                                    "stages run after each other in a cycle: {}",
                                    names.join(" → ")
                                ),
                            )
                            .with_help("one stage of the cycle must run on a schedule"),
                        );
                    }
                    break;
                }
                path.push(n);
                current = n;
            }
        }
    }
}

/// The span of every key inside the table `value`, nested tables' keys by their path.
fn key_spans(
    value: &Spanned<DeValue<'_>>,
    path: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, Range<usize>)>,
) {
    let DeValue::Table(table) = value.get_ref() else {
        return;
    };
    for (key, inner) in table.iter() {
        path.push(key.get_ref().to_string());
        out.push((path.clone(), key.span()));
        key_spans(inner, path, out);
        path.pop();
    }
}

/// The span of the key at `path` (keys of nested tables) inside the table `value`.
fn key_span(value: &Spanned<DeValue<'_>>, path: &[String]) -> Option<Range<usize>> {
    let (first, rest) = path.split_first()?;
    let DeValue::Table(table) = value.get_ref() else {
        return None;
    };
    let (key, inner) = table
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == first.as_str())?;
    if rest.is_empty() {
        Some(key.span())
    } else {
        key_span(inner, rest)
    }
}

/// Finds the value with exactly `span` inside `value` (an inline component table).
fn find_by_span<'a, 'i>(
    value: &'a Spanned<DeValue<'i>>,
    span: &Range<usize>,
) -> Option<&'a Spanned<DeValue<'i>>> {
    if value.span() == *span && value.get_ref().is_table() {
        return Some(value);
    }
    match value.get_ref() {
        DeValue::Table(table) => table.values().find_map(|v| find_by_span(v, span)),
        DeValue::Array(array) => array.iter().find_map(|v| find_by_span(v, span)),
        _ => None,
    }
}

/// The parameter names of a config type, from its JSON Schema.
pub(crate) fn property_names<T: JsonSchema>() -> Vec<String> {
    let schema = schemars::SchemaGenerator::default().into_root_schema_for::<T>();
    schema
        .get("properties")
        .and_then(|p| p.as_object())
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

fn stage_property_names(kind: StageKind) -> Vec<String> {
    let mut names = match kind {
        StageKind::Recording => property_names::<RecordingStage>(),
        StageKind::Detection => property_names::<DetectionStage>(),
        StageKind::Management => property_names::<ManagementStage>(),
        StageKind::Messaging => property_names::<MessagingStage>(),
        StageKind::Heartbeat => property_names::<HeartbeatStage>(),
        StageKind::Summary => property_names::<SummaryStage>(),
    };
    names.retain(|n| n != "kind");
    names
}
