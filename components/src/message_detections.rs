//! `message.detections`: one detection message per model output, holding the detections
//! above a threshold (acoupi's DetectionThresholdMessageBuilder, same JSON).

use std::sync::Arc;

use acoupi_engine::component::{ComponentError, ComponentResult, MessageFactory};
use acoupi_engine::config::values::Score;
use acoupi_engine::data::{Message, MessageType, ModelOutput};
use acoupi_engine::registry::{BuildContext, Built, ComponentConfig};

/// One detection message per model output with the detections whose score is at least the
/// threshold and that carry at least one tag; no message when none is left. The content is
/// the ModelOutput as acoupi's JSON.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectionMessageConfig {
    /// Minimum detection score, 0 to 1.
    #[serde(default = "default_threshold")]
    #[schemars(default = "default_threshold")]
    pub threshold: Score,
}

fn default_threshold() -> Score {
    Score(0.5)
}

impl ComponentConfig for DetectionMessageConfig {
    const KIND: &'static str = "message.detections";

    fn build(&self, _: &BuildContext) -> Result<Built, String> {
        Ok(Built::MessageFactory(Arc::new(DetectionMessages { threshold: self.threshold.0 })))
    }
}

pub struct DetectionMessages {
    threshold: f64,
}

impl MessageFactory for DetectionMessages {
    fn build(&self, output: &ModelOutput) -> ComponentResult<Vec<Message>> {
        let mut kept = output.clone();
        kept.detections.retain(|d| d.detection_score >= self.threshold && !d.tags.is_empty());
        if kept.detections.is_empty() {
            return Ok(Vec::new());
        }
        let content = serde_json::to_string(&kept).map_err(|e| ComponentError::Other(format!("cannot serialise the model output: {e}")))?;
        Ok(vec![Message::new(content).with_type(MessageType::Detection)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{detection, output};

    #[test]
    fn one_message_with_the_tagged_detections_above_the_threshold() {
        let factory = DetectionMessages { threshold: 0.5 };
        let input = output(vec![
            detection(0.9, &[("species", "Turdus merula", 0.9)]),
            detection(0.8, &[]),
            detection(0.3, &[("species", "Erithacus rubecula", 0.3)]),
        ]);
        let messages = factory.build(&input).unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].message_type, Some(MessageType::Detection));
        let json: serde_json::Value = serde_json::from_str(messages[0].content.as_text().unwrap()).unwrap();
        let detections = json["detections"].as_array().unwrap();
        assert_eq!(detections.len(), 1);
        assert_eq!(detections[0]["tags"][0]["tag"]["value"], "Turdus merula");
        assert_eq!(json["name_model"], input.name_model);
        assert_eq!(json["recording"]["id"], input.recording.id.to_string());
    }

    #[test]
    fn no_message_when_nothing_is_left() {
        let factory = DetectionMessages { threshold: 0.95 };
        let input = output(vec![detection(0.9, &[("species", "a", 0.9)])]);
        assert!(factory.build(&input).unwrap().is_empty());
    }
}
