//! File-name and folder templates shared by the saving managers (`manager.date_folders`,
//! `manager.by_tag`, `manager.by_score`): parsing, rendering from a recording, its
//! deployment and its model outputs, sanitising, and the check that a destination stays
//! inside its root.
//!
//! Templates take `{field}` or `{datetime:FORMAT}`. Fields: `year`, `month`, `day` (of the
//! recording, in the deployment timezone), `datetime` (chrono format, default
//! `%Y%m%d_%H%M%S`), `id`, `deployment`, `model`, `top_tag` (the value of the most
//! confident tag of any detection, unless a manager chooses another: see [`TopTag`]),
//! `score` (that tag's confidence, 2 decimals), `samplerate`. A missing value renders
//! empty.
//!
//! Every rendered value, and every rendered folder level and file name, goes through
//! [`sanitise`], so a tag such as `../../etc` or `Turdus merula/philomelos` can never leave
//! the root or add a folder level: a destination is always `root / one component per
//! folder level / file name`. A level that renders empty becomes `_`; a file name that
//! renders empty becomes the recording id; `.wav` is added when missing. The final path is
//! checked to be inside the root all the same.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use acoupi_engine::component::{ComponentError, ComponentResult};
use acoupi_engine::data::{ModelOutput, PredictedTag, Recording};
use acoupi_engine::registry::BuildContext;
use chrono::DateTime;
use chrono::format::{Item, StrftimeItems};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer};

pub const FIELDS: [&str; 10] = [
    "year",
    "month",
    "day",
    "datetime",
    "id",
    "deployment",
    "model",
    "top_tag",
    "score",
    "samplerate",
];

/// The default file name of every manager.
pub const DEFAULT_FILENAME: &str = "{datetime:%Y%m%d_%H%M%S}_{id}.wav";

/// The longest file or folder name most filesystems accept (ext4, XFS, Btrfs, exFAT: 255
/// bytes), and so the longest rendered path component.
pub const MAX_COMPONENT_BYTES: usize = 255;

const EXTENSION: &str = ".wav";

/// The default file name, parsed (for `#[serde(default = ...)]`).
pub fn default_filename() -> Template {
    Template::parse(DEFAULT_FILENAME).unwrap_or_default()
}

/// The default file name as written (for `#[schemars(default = ...)]`).
pub fn default_filename_text() -> &'static str {
    DEFAULT_FILENAME
}

/// A parsed template: literal text and `{field[:format]}` placeholders.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Template(Vec<Piece>);

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Field {
        name: String,
        format: Option<String>,
    },
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("unclosed `{{` in template `{text}`"))?
                + open;
            let inner = &rest[open + 1..close];
            let (name, format) = match inner.split_once(':') {
                Some((name, format)) => (name, Some(format.to_string())),
                None => (inner, None),
            };
            if !FIELDS.contains(&name) {
                return Err(format!(
                    "unknown template field `{{{name}}}`; fields: {}",
                    FIELDS.join(", ")
                ));
            }
            if let Some(format) = &format {
                if name != "datetime" {
                    return Err(format!(
                        "only `{{datetime:...}}` takes a format, not `{{{name}}}`"
                    ));
                }
                if StrftimeItems::new(format).any(|item| matches!(item, Item::Error)) {
                    return Err(format!(
                        "invalid date format `{format}` in `{{datetime:{format}}}` (chrono strftime, e.g. `%Y%m%d_%H%M%S`)"
                    ));
                }
            }
            pieces.push(Piece::Field {
                name: name.to_string(),
                format,
            });
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template(pieces))
    }

    /// The template filled in: literal text as written, each field value sanitised.
    pub fn render(&self, fields: &Fields<'_>) -> String {
        self.0
            .iter()
            .map(|piece| match piece {
                Piece::Text(text) => Cow::Borrowed(text.as_str()),
                Piece::Field { name, format } => {
                    Cow::Owned(sanitise(&fields.value(name, format.as_deref())))
                }
            })
            .collect()
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Template::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Template {
    fn schema_name() -> Cow<'static, str> {
        "Template".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": format!("A template with {{field}} or {{datetime:FORMAT}} placeholders; fields: {}.", FIELDS.join(", ")),
        })
    }
}

/// Folder levels under a root, separated by literal `/`s (a `/` inside a `{datetime:...}`
/// format does not split); each level is a [`Template`] rendered as one folder name. The
/// empty string means no folder: files go straight into the root.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FolderTemplate(Vec<Template>);

impl FolderTemplate {
    pub fn parse(text: &str) -> Result<FolderTemplate, String> {
        if text.is_empty() {
            return Ok(FolderTemplate::default());
        }
        let mut levels = Vec::new();
        let mut level = Vec::new();
        for piece in Template::parse(text)?.0 {
            match piece {
                Piece::Text(text) => {
                    let mut parts = text.split('/');
                    if let Some(first) = parts.next() {
                        level.push(Piece::Text(first.to_string()));
                    }
                    for part in parts {
                        levels.push(Template(std::mem::take(&mut level)));
                        level.push(Piece::Text(part.to_string()));
                    }
                }
                field => level.push(field),
            }
        }
        levels.push(Template(level));
        for level in &levels {
            let literal: Option<String> = level
                .0
                .iter()
                .map(|piece| {
                    if let Piece::Text(text) = piece {
                        Some(text.as_str())
                    } else {
                        None
                    }
                })
                .collect();
            match literal.as_deref().map(str::trim) {
                Some("") => {
                    return Err(format!(
                        "empty folder level in `{text}`: levels are separated by single `/`s, with none at the start or end"
                    ));
                }
                Some("." | "..") => {
                    return Err(format!(
                        "folder level `{}` in `{text}`: levels stay under the root; set `root` to use another folder",
                        literal.unwrap_or_default()
                    ));
                }
                _ => {}
            }
        }
        Ok(FolderTemplate(levels))
    }

    /// How many folders a destination has under the root.
    pub fn depth(&self) -> usize {
        self.0.len()
    }
}

impl<'de> Deserialize<'de> for FolderTemplate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        FolderTemplate::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for FolderTemplate {
    fn schema_name() -> Cow<'static, str> {
        "FolderTemplate".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": format!(
                "Folder levels separated by `/`, each a template with {{field}} or {{datetime:FORMAT}} placeholders; fields: {}. A level that renders empty becomes `_`; \"\" means no folder.",
                FIELDS.join(", ")
            ),
        })
    }
}

/// The tag that `{top_tag}` and `{score}` render: its value and its confidence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopTag<'a> {
    pub value: &'a str,
    pub score: f64,
}

impl<'a> TopTag<'a> {
    /// The most confident of `tags` (the last of equals), if any.
    pub fn most_confident(tags: impl IntoIterator<Item = &'a PredictedTag>) -> Option<TopTag<'a>> {
        tags.into_iter()
            .max_by(|a, b| a.confidence_score.total_cmp(&b.confidence_score))
            .map(|t| TopTag {
                value: &t.tag.value,
                score: t.confidence_score,
            })
    }

    /// The most confident tag of any detection of any output: the default top tag.
    pub fn of_outputs(outputs: &'a [ModelOutput]) -> Option<TopTag<'a>> {
        TopTag::most_confident(
            outputs
                .iter()
                .flat_map(|o| &o.detections)
                .flat_map(|d| &d.tags),
        )
    }
}

/// What templates are rendered from: a recording, its model outputs, the deployment
/// timezone (for dates) and the top tag.
pub struct Fields<'a> {
    recording: &'a Recording,
    outputs: &'a [ModelOutput],
    local: DateTime<chrono_tz::Tz>,
    top: Option<TopTag<'a>>,
}

impl<'a> Fields<'a> {
    /// The fields of `recording`, with the most confident tag of any detection as the top
    /// tag.
    pub fn new(
        recording: &'a Recording,
        outputs: &'a [ModelOutput],
        timezone: chrono_tz::Tz,
    ) -> Fields<'a> {
        Fields {
            recording,
            outputs,
            local: recording.created_on.with_timezone(&timezone),
            top: TopTag::of_outputs(outputs),
        }
    }

    /// The same fields with `top` as the top tag (`None`: `{top_tag}` and `{score}` render
    /// empty).
    pub fn with_top_tag(self, top: Option<TopTag<'a>>) -> Fields<'a> {
        Fields { top, ..self }
    }

    /// The raw (unsanitised) value of a field.
    fn value(&self, name: &str, format: Option<&str>) -> String {
        let date = |format: &str| {
            let mut text = String::new();
            // A format that chrono cannot render gives an empty value, never a panic.
            match write!(text, "{}", self.local.format(format)) {
                Ok(()) => text,
                Err(_) => String::new(),
            }
        };
        match name {
            "year" => date("%Y"),
            "month" => date("%m"),
            "day" => date("%d"),
            "datetime" => date(format.unwrap_or("%Y%m%d_%H%M%S")),
            "id" => self.recording.id.to_string(),
            "deployment" => self.recording.deployment.name.clone(),
            "model" => self
                .outputs
                .first()
                .map(|o| o.name_model.clone())
                .unwrap_or_default(),
            "top_tag" => self.top.map(|t| t.value.to_string()).unwrap_or_default(),
            "score" => self
                .top
                .map(|t| format!("{:.2}", t.score))
                .unwrap_or_default(),
            "samplerate" => self.recording.samplerate.to_string(),
            _ => String::new(),
        }
    }
}

/// Makes a value safe as one path component: control characters, path separators and
/// characters reserved on common filesystems (`: * ? " < > |`) become `_`; surrounding
/// whitespace is trimmed; the result is cut to [`MAX_COMPONENT_BYTES`] bytes on a
/// character boundary (and trimmed again); `.` and `..` become `_` and `__`. The result
/// may be empty, never `.` or `..`, and never contains a separator.
pub fn sanitise(value: &str) -> String {
    let cleaned: String = value
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let mut trimmed = cleaned.trim();
    trimmed = trimmed[..trimmed.floor_char_boundary(MAX_COMPONENT_BYTES)].trim_end();
    match trimmed {
        "." | ".." => "_".repeat(trimmed.len()),
        _ => trimmed.to_string(),
    }
}

/// The destination of a recording: `root` / one folder per level of `folders` / the file
/// name from `filename` (`.wav` added when missing, the recording id when it renders
/// empty). Fails, rather than return it, if the path would not be inside `root`.
pub fn destination(
    root: &Path,
    folders: &FolderTemplate,
    filename: &Template,
    fields: &Fields<'_>,
) -> ComponentResult<PathBuf> {
    let mut path = root.to_path_buf();
    for level in &folders.0 {
        let name = sanitise(&level.render(fields));
        path.push(if name.is_empty() {
            "_".to_string()
        } else {
            name
        });
    }
    let mut file = sanitise(&filename.render(fields));
    if file.is_empty() {
        file = fields.recording.id.to_string();
    }
    if !file.to_lowercase().ends_with(EXTENSION) {
        file = format!(
            "{}{EXTENSION}",
            file[..file.floor_char_boundary(MAX_COMPONENT_BYTES - EXTENSION.len())].trim_end()
        );
    }
    path.push(file);
    inside_root(root, path, folders.depth() + 1)
}

/// A manager's root: `root` resolved against the pipeline file, or `[paths] recordings`.
pub fn manager_root(ctx: &BuildContext, root: Option<&Path>) -> PathBuf {
    root.map_or_else(|| ctx.settings.recordings_dir.clone(), |r| ctx.resolve(r))
}

/// `path` if it is `root` followed by exactly `names` plain names (no `..`, `.` or root),
/// none of which is a symbolic link where it exists already (a day folder replaced by a
/// link would put the recording outside the tree; see `acoupi_engine::folders`).
fn inside_root(root: &Path, path: PathBuf, names: usize) -> ComponentResult<PathBuf> {
    let plain = path.strip_prefix(root).is_ok_and(|rest| {
        rest.components().all(|c| matches!(c, Component::Normal(_)))
            && rest.components().count() == names
    });
    if !plain {
        return Err(ComponentError::Other(format!(
            "refusing destination `{}`: not {names} plain names under the recordings root `{}`",
            path.display(),
            root.display()
        )));
    }
    if let Some(link) = acoupi_engine::folders::link_below(root, &path) {
        return Err(ComponentError::Other(format!(
            "refusing destination `{}`: `{}` is a symbolic link, which is not followed",
            path.display(),
            link.display()
        )));
    }
    Ok(path)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testing::{detection, output};
    use acoupi_engine::registry::{Built, ComponentConfig};
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;

    pub(crate) const ROOT: &str = "/data/recordings";

    /// Where the manager configured by `config` (with `root = ROOT` unless it says
    /// otherwise) puts a recording made at 2026-05-04 12:00 UTC with `outputs`, relative to
    /// `ROOT`; `None` when it leaves the recording to the next manager.
    pub(crate) fn save_relative<C: ComponentConfig>(
        mut config: serde_json::Value,
        outputs: &[ModelOutput],
    ) -> Option<String> {
        if config.get("root").is_none() {
            config["root"] = serde_json::json!(ROOT);
        }
        let config: C = serde_json::from_value(config).unwrap();
        let Built::Manager(manager) = config
            .build(&crate::testing::context(Path::new("/station"), None))
            .unwrap()
        else {
            panic!("not a manager")
        };
        let when = Utc.with_ymd_and_hms(2026, 5, 4, 12, 0, 0).unwrap();
        let mut outputs = outputs.to_vec();
        for output in &mut outputs {
            output.recording.created_on = when;
        }
        let mut recording = outputs
            .first()
            .map_or_else(crate::testing::recording, |o| o.recording.clone());
        recording.created_on = when;
        let path = manager.save(&recording, &outputs).unwrap()?;
        Some(
            path.strip_prefix(ROOT)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string(),
        )
    }

    fn render(folders: &str, filename: &str, outputs: &[ModelOutput]) -> PathBuf {
        let fields = Fields::new(&outputs[0].recording, outputs, chrono_tz::Europe::London);
        destination(
            Path::new(ROOT),
            &FolderTemplate::parse(folders).unwrap(),
            &Template::parse(filename).unwrap(),
            &fields,
        )
        .unwrap()
    }

    #[test]
    fn dates_in_the_deployment_timezone() {
        let mut out = output(vec![detection(
            0.9,
            &[
                ("species", "Turdus merula", 0.9),
                ("species", "Parus major", 0.5),
            ],
        )]);
        out.recording.created_on = Utc.with_ymd_and_hms(2026, 6, 30, 23, 30, 0).unwrap(); // 00:30 BST on 1 July
        let path = render(
            "{year}/{month}/{day}",
            "{datetime:%H%M%S}_{top_tag}_{score}",
            &[out],
        );
        assert_eq!(
            path,
            PathBuf::from("/data/recordings/2026/07/01/003000_Turdus merula_0.90.wav")
        );
    }

    #[test]
    fn chosen_top_tag() {
        let out = output(vec![detection(0.9, &[("species", "Turdus merula", 0.9)])]);
        let outputs = [out];
        let fields = Fields::new(&outputs[0].recording, &outputs, chrono_tz::UTC).with_top_tag(
            Some(TopTag {
                value: "Parus major",
                score: 0.555,
            }),
        );
        let path = destination(
            Path::new(ROOT),
            &FolderTemplate::parse("{top_tag}").unwrap(),
            &Template::parse("{score}").unwrap(),
            &fields,
        )
        .unwrap();
        assert_eq!(path, PathBuf::from("/data/recordings/Parus major/0.56.wav"));
        let fields =
            Fields::new(&outputs[0].recording, &outputs, chrono_tz::UTC).with_top_tag(None);
        let path = destination(
            Path::new(ROOT),
            &FolderTemplate::parse("x/{top_tag}").unwrap(),
            &Template::parse("{score}").unwrap(),
            &fields,
        )
        .unwrap();
        assert_eq!(
            path,
            PathBuf::from(ROOT)
                .join("x")
                .join("_")
                .join(format!("{}.wav", outputs[0].recording.id))
        );
    }

    #[test]
    fn hostile_values_cannot_escape_the_root_or_add_levels() {
        for hostile in [
            "../../etc",
            "Turdus merula/philomelos",
            "..",
            "a\\b",
            "/abs",
            "x\u{0}y",
            " .. ",
            "",
        ] {
            let out = output(vec![detection(0.9, &[("species", hostile, 0.9)])]);
            let path = render("{top_tag}/{year}", "{top_tag}", &[out]);
            let rest = path.strip_prefix(ROOT).unwrap();
            assert_eq!(rest.components().count(), 3, "{hostile:?} gave {path:?}");
            assert!(
                rest.components().all(|c| matches!(c, Component::Normal(_))),
                "{hostile:?} gave {path:?}"
            );
        }
    }

    #[test]
    fn a_destination_through_a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (root, outside) = (dir.path().join("recordings"), dir.path().join("outside"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("days")).unwrap();
        let out = output(vec![detection(0.9, &[("species", "x", 0.9)])]);
        let fields = Fields::new(&out.recording, std::slice::from_ref(&out), chrono_tz::UTC);
        let folders = FolderTemplate::parse("days/{month}").unwrap();
        let error =
            destination(&root, &folders, &Template::parse("a").unwrap(), &fields).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("is a symbolic link, which is not followed"),
            "{error}"
        );
        std::fs::remove_file(root.join("days")).unwrap();
        assert!(destination(&root, &folders, &Template::parse("a").unwrap(), &fields).is_ok());
    }

    #[test]
    fn templates_are_checked_when_loaded() {
        assert!(
            Template::parse("{year}/{nope}")
                .unwrap_err()
                .contains("unknown template field `{nope}`")
        );
        assert!(Template::parse("{year").is_err());
        assert!(Template::parse("{id:%Y}").is_err());
        assert!(
            Template::parse("{datetime:%Q}")
                .unwrap_err()
                .contains("invalid date format `%Q`")
        );
        assert_eq!(Template::parse("a{id}b").unwrap().0.len(), 3);
        for bad in ["a//b", "/a", "a/", " /a", "../x", "a/./b"] {
            assert!(FolderTemplate::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(FolderTemplate::parse("").unwrap().depth(), 0);
        assert_eq!(
            FolderTemplate::parse("{datetime:%Y/%m}/x{top_tag}")
                .unwrap()
                .depth(),
            2
        );
        assert_eq!(
            FolderTemplate::parse("{top_tag}/{year}-{month}")
                .unwrap()
                .depth(),
            2
        );
    }

    #[test]
    fn sanitise_caps_components_on_a_char_boundary() {
        let long = "é".repeat(200); // 400 bytes
        let cut = sanitise(&long);
        assert_eq!(cut.len(), 254);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(sanitise(&"a".repeat(300)).len(), MAX_COMPONENT_BYTES);
        assert_eq!(sanitise(&format!("{} x", "a".repeat(254))), "a".repeat(254));
        assert_eq!(sanitise(" .. "), "__");
        assert_eq!(sanitise("a/b\\c\u{0}d"), "a_b_c_d");
        // A long file name keeps its `.wav`.
        let out = output(vec![detection(0.9, &[("species", &"x".repeat(400), 0.9)])]);
        let path = render("", "{top_tag}.wav", &[out]);
        let file = path.file_name().unwrap().to_str().unwrap();
        assert!(
            file.len() <= MAX_COMPONENT_BYTES && file.ends_with(".wav"),
            "{file}"
        );
    }

    /// Any text, with the hostile cases drawn often.
    pub(crate) fn hostile_text() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "",
                ".",
                "..",
                "/",
                "\\",
                "\0",
                "../../etc",
                "Turdus merula/philomelos",
                " .. ",
                "a/../..",
                "\u{202e}",
                "\r\n\t"
            ])
            .prop_map(String::from),
            any::<String>(),
            prop::collection::vec(any::<char>(), 0..40).prop_map(|c| c.into_iter().collect()),
            prop::collection::vec(any::<char>(), 200..400).prop_map(|c| c.into_iter().collect()),
            r"[./\\\x00 a]{0,12}",
        ]
    }

    /// Checks what every destination must be: inside `root`, `depth` plain, non-empty
    /// folder names of at most 255 bytes, then a `.wav` file name.
    pub(crate) fn check_destination(
        root: &Path,
        path: &Path,
        depth: usize,
    ) -> Result<(), TestCaseError> {
        let rest = path
            .strip_prefix(root)
            .map_err(|_| TestCaseError::fail(format!("{path:?} is not under {root:?}")))?;
        let names: Vec<_> = rest.components().collect();
        prop_assert_eq!(names.len(), depth + 1, "{:?}", path);
        for name in &names {
            let Component::Normal(name) = name else {
                return Err(TestCaseError::fail(format!("{name:?} in {path:?}")));
            };
            let name = name.to_str().unwrap_or_default();
            prop_assert!(
                !name.is_empty()
                    && name != "."
                    && name != ".."
                    && name.len() <= MAX_COMPONENT_BYTES,
                "{:?}",
                path
            );
            prop_assert!(!name.contains(['/', '\\', '\0']), "{:?}", path);
        }
        prop_assert!(
            rest.to_str().unwrap_or_default().ends_with(".wav"),
            "{:?}",
            path
        );
        Ok(())
    }

    proptest! {
        #[test]
        fn destinations_stay_inside_the_root(
            tag in hostile_text(),
            deployment in hostile_text(),
            folders in prop::sample::select(vec!["", "{top_tag}", "{deployment}/{top_tag}", "{top_tag}/{year}-{month}", "a{deployment}b/{top_tag}{top_tag}/{day}"]),
            filename in prop::sample::select(vec![DEFAULT_FILENAME, "{top_tag}", "{deployment}_{top_tag}.wav", "{top_tag}{top_tag}{deployment}", ""]),
        ) {
            let mut out = output(vec![detection(0.9, &[("species", &tag, 0.9)])]);
            out.recording.deployment.name = deployment;
            let folders = FolderTemplate::parse(folders).unwrap();
            let outputs = [out];
            let fields = Fields::new(&outputs[0].recording, &outputs, chrono_tz::UTC);
            let path = destination(Path::new(ROOT), &folders, &Template::parse(filename).unwrap(), &fields).unwrap();
            check_destination(Path::new(ROOT), &path, folders.depth())?;
        }
    }
}
