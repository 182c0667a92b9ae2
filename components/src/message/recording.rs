//! `message.recording`: the analysed Recording as acoupi's JSON (type `recording`), one
//! message per model output.

use std::sync::Arc;

use acoupi_engine::component::{ComponentError, ComponentResult, MessageFactory};
use acoupi_engine::data::{Message, MessageType, ModelOutput};
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};

/// One `recording` message per model output: the analysed Recording as acoupi's JSON (id,
/// path, created_on, duration, samplerate, audio_channels, time_expansion, deployment).
#[derive(Debug, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordingMessageConfig {}

impl ComponentConfig for RecordingMessageConfig {
    const KIND: &'static str = "message.recording";

    fn build(&self, _: &BuildContext) -> Result<Built, BuildError> {
        Ok(Built::MessageFactory(Arc::new(RecordingMessages)))
    }
}

pub struct RecordingMessages;

impl MessageFactory for RecordingMessages {
    fn build(&self, output: &ModelOutput) -> ComponentResult<Vec<Message>> {
        let content = serde_json::to_string(&output.recording)
            .map_err(|e| ComponentError::Other(format!("cannot serialise the recording: {e}")))?;
        Ok(vec![
            Message::new(content).with_type(MessageType::Recording),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::output;
    use acoupi_engine::data::Recording;

    #[test]
    fn a_recording_message_per_output_with_acoupis_recording_json() {
        let input = output(Vec::new());
        let messages = RecordingMessages.build(&input).unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].message_type, Some(MessageType::Recording));
        let back: Recording = serde_json::from_str(messages[0].content.as_text().unwrap()).unwrap();
        assert_eq!(back, input.recording);
    }
}
