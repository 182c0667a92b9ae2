//! `manager.date_folders`: keeps recordings in a date folder tree under the recordings
//! root, named by a template (acoupi's DateFileManager, with templates).
//!
//! Templates take `{field}` or `{field:format}`. Fields: `year`, `month`, `day` (of the
//! recording, in the deployment timezone), `datetime` (chrono format, default
//! `%Y%m%d_%H%M%S`), `id`, `deployment`, `model`, `top_tag` (the value of the most confident
//! tag of any detection), `score` (that tag's confidence, 2 decimals), `samplerate`. A
//! missing value renders empty. Every rendered value is sanitised: path separators,
//! control and reserved characters become `_` and a value cannot be `.` or `..`, so a tag
//! such as `../../etc` or `Turdus merula/philomelos` can never leave the recordings root or
//! add a folder level; the final path is checked to be inside the root.

use std::borrow::Cow;
use std::path::{Component, PathBuf};
use std::sync::Arc;

use acoupi_engine::component::{ComponentError, ComponentResult, SavingManager};
use acoupi_engine::data::{ModelOutput, Recording};
use acoupi_engine::registry::{BuildContext, Built, ComponentConfig};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer};

const FIELDS: [&str; 10] = ["year", "month", "day", "datetime", "id", "deployment", "model", "top_tag", "score", "samplerate"];

/// Keep recordings in dated folders (`{year}/{month}/{day}` by default) under the
/// recordings root, with a file name from a template.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DateFoldersManagerConfig {
    /// Folder levels under the root, separated by `/`; each level is a template.
    #[serde(default = "default_folders")]
    #[schemars(default = "default_folders_text")]
    pub folders: Template,
    /// File name template (`.wav` is added when missing).
    #[serde(default = "default_filename")]
    #[schemars(default = "default_filename_text")]
    pub filename: Template,
    /// Root folder (relative to the pipeline file). Default: `[paths] recordings`.
    pub root: Option<PathBuf>,
}

fn default_folders_text() -> &'static str {
    "{year}/{month}/{day}"
}
fn default_filename_text() -> &'static str {
    "{datetime:%Y%m%d_%H%M%S}_{id}.wav"
}
fn default_folders() -> Template {
    Template::parse(default_folders_text()).unwrap_or_default()
}
fn default_filename() -> Template {
    Template::parse(default_filename_text()).unwrap_or_default()
}

/// A parsed template: literal text and `{field[:format]}` placeholders.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Template(Vec<Piece>);

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Field { name: String, format: Option<String> },
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let close = rest[open..].find('}').ok_or_else(|| format!("unclosed `{{` in template `{text}`"))? + open;
            let inner = &rest[open + 1..close];
            let (name, format) = match inner.split_once(':') {
                Some((name, format)) => (name, Some(format.to_string())),
                None => (inner, None),
            };
            if !FIELDS.contains(&name) {
                return Err(format!("unknown template field `{{{name}}}`; fields: {}", FIELDS.join(", ")));
            }
            if format.is_some() && name != "datetime" {
                return Err(format!("only `{{datetime:...}}` takes a format, not `{{{name}}}`"));
            }
            pieces.push(Piece::Field { name: name.to_string(), format });
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template(pieces))
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

/// Makes a rendered value safe as one path component.
pub fn sanitise(value: &str) -> String {
    let cleaned: String = value
        .chars()
        .map(|c| if c.is_control() || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') { '_' } else { c })
        .collect();
    let trimmed = cleaned.trim();
    match trimmed {
        "" => String::new(),
        "." | ".." => "_".repeat(trimmed.len()),
        _ => trimmed.to_string(),
    }
}

impl ComponentConfig for DateFoldersManagerConfig {
    const KIND: &'static str = "manager.date_folders";

    fn build(&self, ctx: &BuildContext) -> Result<Built, String> {
        let root = self.root.as_deref().map_or_else(|| ctx.settings.recordings_dir.clone(), |r| ctx.resolve(r));
        Ok(Built::Manager(Arc::new(DateFoldersManager {
            root,
            folders: self.folders.clone(),
            filename: self.filename.clone(),
            timezone: ctx.settings.deployment.timezone,
        })))
    }
}

pub struct DateFoldersManager {
    root: PathBuf,
    folders: Template,
    filename: Template,
    timezone: chrono_tz::Tz,
}

impl DateFoldersManager {
    fn render(&self, template: &[Piece], recording: &Recording, outputs: &[ModelOutput]) -> String {
        let local = recording.created_on.with_timezone(&self.timezone);
        let top = outputs
            .iter()
            .flat_map(|o| &o.detections)
            .flat_map(|d| &d.tags)
            .max_by(|a, b| a.confidence_score.total_cmp(&b.confidence_score));
        template
            .iter()
            .map(|piece| match piece {
                Piece::Text(text) => text.clone(),
                Piece::Field { name, format } => sanitise(&match name.as_str() {
                    "year" => local.format("%Y").to_string(),
                    "month" => local.format("%m").to_string(),
                    "day" => local.format("%d").to_string(),
                    "datetime" => local.format(format.as_deref().unwrap_or("%Y%m%d_%H%M%S")).to_string(),
                    "id" => recording.id.to_string(),
                    "deployment" => recording.deployment.name.clone(),
                    "model" => outputs.first().map(|o| o.name_model.clone()).unwrap_or_default(),
                    "top_tag" => top.map(|t| t.tag.value.clone()).unwrap_or_default(),
                    "score" => top.map(|t| format!("{:.2}", t.confidence_score)).unwrap_or_default(),
                    "samplerate" => recording.samplerate.to_string(),
                    _ => String::new(),
                }),
            })
            .collect()
    }

    /// The destination of a recording: root / each folder level / file name.
    pub fn destination(&self, recording: &Recording, outputs: &[ModelOutput]) -> ComponentResult<PathBuf> {
        let mut path = self.root.clone();
        // Split the folder template at its literal `/`s; each level is rendered alone.
        let mut level: Vec<Piece> = Vec::new();
        let mut levels: Vec<Vec<Piece>> = Vec::new();
        for piece in &self.folders.0 {
            match piece {
                Piece::Text(text) => {
                    let mut parts = text.split('/');
                    if let Some(first) = parts.next() {
                        level.push(Piece::Text(first.to_string()));
                    }
                    for part in parts {
                        levels.push(std::mem::take(&mut level));
                        level.push(Piece::Text(part.to_string()));
                    }
                }
                field => level.push(field.clone()),
            }
        }
        levels.push(level);
        for level in levels {
            let name = sanitise(&self.render(&level, recording, outputs));
            if !name.is_empty() {
                path.push(name);
            }
        }
        let mut file = sanitise(&self.render(&self.filename.0, recording, outputs));
        if file.is_empty() {
            file = recording.id.to_string();
        }
        if !file.to_lowercase().ends_with(".wav") {
            file.push_str(".wav");
        }
        path.push(file);
        let escapes = path.strip_prefix(&self.root).map_or(true, |rest| rest.components().any(|c| !matches!(c, Component::Normal(_))));
        if escapes {
            return Err(ComponentError::Other(format!("refusing destination `{}` outside the recordings root `{}`", path.display(), self.root.display())));
        }
        Ok(path)
    }
}

impl SavingManager for DateFoldersManager {
    fn save(&self, recording: &Recording, outputs: &[ModelOutput]) -> ComponentResult<Option<PathBuf>> {
        self.destination(recording, outputs).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{detection, output};
    use chrono::{TimeZone, Utc};

    fn manager(folders: &str, filename: &str) -> DateFoldersManager {
        DateFoldersManager {
            root: PathBuf::from("/data/recordings"),
            folders: Template::parse(folders).unwrap(),
            filename: Template::parse(filename).unwrap(),
            timezone: chrono_tz::Europe::London,
        }
    }

    #[test]
    fn date_folders_in_the_deployment_timezone() {
        let mut out = output(vec![detection(0.9, &[("species", "Turdus merula", 0.9), ("species", "Parus major", 0.5)])]);
        out.recording.created_on = Utc.with_ymd_and_hms(2026, 6, 30, 23, 30, 0).unwrap(); // 00:30 BST on 1 July
        let path = manager("{year}/{month}/{day}", "{datetime:%H%M%S}_{top_tag}_{score}").destination(&out.recording, &[out.clone()]).unwrap();
        assert_eq!(path, PathBuf::from("/data/recordings/2026/07/01/003000_Turdus merula_0.90.wav"));
    }

    #[test]
    fn hostile_values_cannot_escape_the_root_or_add_levels() {
        for hostile in ["../../etc", "Turdus merula/philomelos", "..", "a\\b", "/abs", "x\u{0}y", " .. "] {
            let out = output(vec![detection(0.9, &[("species", hostile, 0.9)])]);
            let m = manager("{top_tag}/{year}", "{top_tag}");
            let path = m.destination(&out.recording, &[out.clone()]).unwrap();
            let rest = path.strip_prefix("/data/recordings").unwrap();
            assert_eq!(rest.components().count(), 3, "{hostile:?} gave {path:?}");
            assert!(rest.components().all(|c| matches!(c, Component::Normal(_))), "{hostile:?} gave {path:?}");
        }
    }

    #[test]
    fn templates_are_checked_when_loaded() {
        assert!(Template::parse("{year}/{nope}").unwrap_err().contains("unknown template field `{nope}`"));
        assert!(Template::parse("{year").is_err());
        assert!(Template::parse("{id:%Y}").is_err());
        assert_eq!(Template::parse("a{id}b").unwrap().0.len(), 3);
    }
}
