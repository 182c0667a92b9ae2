//! Problems found in a pipeline file: a stable code, a message, the byte span it points
//! at, and an optional hint. Rendered rustc/miette style with `file:line:col` and a caret
//! snippet.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{LabeledSpan, NamedSource, SourceCode};

macro_rules! codes {
    ($($variant:ident => $text:literal,)*) => {
        /// The kind of a problem; its text is stable and used by the test corpus.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code { $($variant,)* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $text,)* }
            }
        }
    };
}

codes! {
    TomlSyntax => "toml-syntax",
    DuplicateName => "duplicate-name",
    UnknownKey => "unknown-key",
    MissingKey => "missing-key",
    TypeMismatch => "type-mismatch",
    OutOfRange => "out-of-range",
    InvalidDuration => "invalid-duration",
    InvalidTime => "invalid-time",
    InvalidCron => "invalid-cron",
    UnknownTimezone => "unknown-timezone",
    UnknownComponentType => "unknown-component-type",
    UnknownStageKind => "unknown-stage-kind",
    UndefinedReference => "undefined-reference",
    WrongFamily => "wrong-family",
    DuplicateReference => "duplicate-reference",
    UndefinedStage => "undefined-stage",
    AfterCycle => "after-cycle",
    IncompatibleAfter => "incompatible-after",
    NoTrigger => "no-trigger",
    TwoTriggers => "two-triggers",
    ScheduleNotAllowed => "schedule-not-allowed",
    InvalidSchedule => "invalid-schedule",
    OffsetTooLarge => "offset-too-large",
    EmptyList => "empty-list",
    InvalidValue => "invalid-value",
    CredentialsInClear => "credentials-in-clear",
    SecretInPipeline => "secret-in-pipeline",
    WebTokenRequired => "web-token-required",
    FileTooLarge => "file-too-large",
    BuildFailed => "build-failed",
}

const TAG_SEPARATOR: char = '\u{1f}';

impl Code {
    /// Prefixes a deserialisation error message with this code so the loader can
    /// classify it (see [`Code::split`]).
    pub(crate) fn tag(self, message: impl fmt::Display) -> String {
        format!("{}{TAG_SEPARATOR}{message}", self.as_str())
    }

    /// Splits a message made by [`Code::tag`]; untagged serde messages are classified by
    /// their wording.
    pub(crate) fn split(message: &str) -> (Code, String) {
        if let Some((code, rest)) = message.split_once(TAG_SEPARATOR)
            && let Some(code) = Code::ALL.iter().find(|c| c.as_str() == code)
        {
            return (*code, rest.to_string());
        }
        let code = if message.starts_with("missing field") {
            Code::MissingKey
        } else if message.starts_with("unknown field") {
            Code::UnknownKey
        } else if message.starts_with("invalid type") {
            Code::TypeMismatch
        } else if message.starts_with("unknown variant") || message.starts_with("invalid value") {
            Code::InvalidValue
        } else if message.contains("duplicate key") {
            Code::DuplicateName
        } else {
            Code::InvalidValue
        };
        (code, message.to_string())
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One mistake in a pipeline file.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub code: Code,
    pub message: String,
    /// Byte range in the file; `None` when the problem concerns the file as a whole.
    pub span: Option<Range<usize>>,
    pub help: Option<String>,
}

impl Problem {
    pub fn new(
        code: Code,
        span: impl Into<Option<Range<usize>>>,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            code,
            message: message.into(),
            span: span.into(),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_help_opt(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }

    /// Converts a toml/serde error, using its span and its code tag; serde's Rust type
    /// names are put in a field user's words.
    pub fn from_toml(error: &toml::de::Error, fallback_span: Range<usize>) -> Self {
        let (code, mut message) = Code::split(error.message().trim());
        for (rust, words) in [
            ("a nonzero u32", "a positive integer"),
            ("f64", "a number"),
            ("f32", "a number"),
            ("u32", "a non-negative integer"),
            ("u64", "a non-negative integer"),
            ("usize", "a non-negative integer"),
            ("i64", "an integer"),
        ] {
            if let Some(stripped) = message.strip_suffix(rust) {
                message = format!("{stripped}{words}");
            }
        }
        Problem::new(code, Some(error.span().unwrap_or(fallback_span)), message)
    }
}

/// A problem across the fields of a component config, found once the config has
/// deserialised (see `ComponentConfig::check`): the loader points it at `key`, a path of
/// keys inside the component's table (`["password_env"]`, `["headers", "Authorization"]`).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyProblem {
    pub key: Vec<String>,
    pub code: Code,
    pub message: String,
    pub help: Option<String>,
}

impl KeyProblem {
    pub fn new(key: &[&str], code: Code, message: impl Into<String>) -> Self {
        KeyProblem {
            key: key.iter().map(|k| k.to_string()).collect(),
            code,
            message: message.into(),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// Suggests the closest candidate to a misspelt name, if one is close enough.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::jaro_winkler(&name.to_lowercase(), &c.to_lowercase()),
                c,
            )
        })
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// A "did you mean" hint, or a list of what is allowed when nothing is close.
pub fn suggestion<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str> + Clone,
) -> Option<String> {
    match did_you_mean(name, candidates.clone()) {
        Some(close) => Some(format!("did you mean `{close}`?")),
        None => {
            let all: Vec<_> = candidates.into_iter().map(|c| format!("`{c}`")).collect();
            (!all.is_empty()).then(|| format!("expected one of {}", all.join(", ")))
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// Every problem found in one pipeline file, with the file's text for rendering.
#[derive(Debug, Clone)]
pub struct PipelineErrors {
    pub path: PathBuf,
    pub source: Arc<str>,
    pub problems: Vec<Problem>,
}

impl PipelineErrors {
    /// `file:line:col` of a problem (or just the file).
    pub fn location(&self, problem: &Problem) -> String {
        match &problem.span {
            Some(span) => {
                let (line, col) = line_col(&self.source, span.start);
                format!("{}:{line}:{col}", self.path.display())
            }
            None => self.path.display().to_string(),
        }
    }

    /// One miette report per problem, for graphical rendering with a caret snippet.
    pub fn reports(&self) -> Vec<ProblemReport> {
        self.problems
            .iter()
            .map(|p| ProblemReport {
                problem: p.clone(),
                location: self.location(p),
                source: NamedSource::new(self.path.display().to_string(), self.source.clone()),
            })
            .collect()
    }
}

impl fmt::Display for PipelineErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in &self.problems {
            writeln!(
                f,
                "{}: error[{}]: {}",
                self.location(problem),
                problem.code,
                problem.message
            )?;
            if let Some(help) = &problem.help {
                writeln!(f, "  help: {help}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for PipelineErrors {}

/// A single problem ready for miette's renderer.
#[derive(Debug)]
pub struct ProblemReport {
    pub problem: Problem,
    pub location: String,
    source: NamedSource<Arc<str>>,
}

impl fmt::Display for ProblemReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.problem.message)
    }
}

impl std::error::Error for ProblemReport {}

impl miette::Diagnostic for ProblemReport {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.problem.code))
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.problem
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.problem
            .span
            .as_ref()
            .map(|_| &self.source as &dyn SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.problem.span.clone()?;
        let len = span.end.saturating_sub(span.start).max(1);
        Some(Box::new(std::iter::once(
            LabeledSpan::new_primary_with_span(None, (span.start, len)),
        )))
    }
}

/// Reading the file failed before any validation (exit code 2, not 1).
#[derive(Debug, thiserror::Error)]
#[error("cannot read pipeline file `{}`: {source}", path.display())]
pub struct ReadError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl ReadError {
    pub fn new(path: &Path, source: std::io::Error) -> Self {
        ReadError {
            path: path.to_path_buf(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, text.find('=').unwrap()), (1, 3));
        assert_eq!(line_col(text, text.rfind('=').unwrap()), (2, 4));
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("model.birdnett", ["model.birdnet", "recorder.replay"]),
            Some("model.birdnet")
        );
        assert_eq!(did_you_mean("zzz", ["model.birdnet"]), None);
        assert_eq!(
            suggestion("q", ["a", "b"]).as_deref(),
            Some("expected one of `a`, `b`")
        );
    }

    #[test]
    fn tagged_messages_round_trip() {
        let tagged = Code::OutOfRange.tag("too big");
        assert_eq!(
            Code::split(&tagged),
            (Code::OutOfRange, "too big".to_string())
        );
        assert_eq!(Code::split("missing field `x`").0, Code::MissingKey);
    }
}
