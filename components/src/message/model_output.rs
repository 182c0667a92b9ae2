//! `message.model_output`: the whole model output as acoupi's JSON, one message per output.

use std::sync::Arc;

use acoupi_engine::component::{ComponentError, ComponentResult, MessageFactory};
use acoupi_engine::data::{Message, MessageType, ModelOutput};
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};

/// The whole model output as acoupi's JSON, one message per output, every detection
/// included (acoupi's FullModelOutputMessageBuilder). An output with no detections still
/// gives a message: "the model ran and heard nothing" is news too.
#[derive(Debug, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelOutputMessageConfig {}

impl ComponentConfig for ModelOutputMessageConfig {
    const KIND: &'static str = "message.model_output";

    fn build(&self, _: &BuildContext) -> Result<Built, BuildError> {
        Ok(Built::MessageFactory(Arc::new(ModelOutputMessages)))
    }
}

pub struct ModelOutputMessages;

impl MessageFactory for ModelOutputMessages {
    fn build(&self, output: &ModelOutput) -> ComponentResult<Vec<Message>> {
        let content = serde_json::to_string(output).map_err(|e| {
            ComponentError::Other(format!("cannot serialise the model output: {e}"))
        })?;
        Ok(vec![
            Message::new(content).with_type(MessageType::Detection),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{detection, output};

    #[test]
    fn the_full_model_output_goes_out_even_when_empty() {
        // Every detection goes out, even an untagged one below any threshold.
        let input = output(vec![
            detection(0.9, &[("species", "Turdus merula", 0.9)]),
            detection(0.8, &[("species", "Erithacus rubecula", 0.8)]),
            detection(0.2, &[("species", "Parus major", 0.2)]),
            detection(0.1, &[]),
        ]);
        let messages = ModelOutputMessages.build(&input).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(messages[0].content.as_text().unwrap()).unwrap();
        assert_eq!(messages[0].message_type, Some(MessageType::Detection));
        assert_eq!(json["detections"].as_array().unwrap().len(), 4);
        assert_eq!(
            ModelOutputMessages
                .build(&output(Vec::new()))
                .unwrap()
                .len(),
            1
        );
    }
}
