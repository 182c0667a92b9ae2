//! MessageType, Message (what a messenger sends), ResponseStatus and Response (what the
//! other side answered; one message can collect many responses).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::DataError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageType {
    Deployment,
    Heartbeat,
    Recording,
    Summary,
    Detection,
}

impl MessageType {
    /// The lowercase name, as in JSON (`detection`, `summary`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Deployment => "deployment",
            MessageType::Heartbeat => "heartbeat",
            MessageType::Recording => "recording",
            MessageType::Summary => "summary",
            MessageType::Detection => "detection",
        }
    }
}

/// A message body: text, or raw bytes. In JSON, text is a string and bytes an array of
/// integers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Bytes(Vec<u8>),
}

impl Content {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Content::Text(text) => Some(text),
            Content::Bytes(_) => None,
        }
    }

    /// The body as bytes (UTF-8 for text).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Content::Text(text) => text.as_bytes(),
            Content::Bytes(bytes) => bytes,
        }
    }
}

impl From<String> for Content {
    fn from(text: String) -> Self {
        Content::Text(text)
    }
}

impl From<&str> for Content {
    fn from(text: &str) -> Self {
        Content::Text(text.to_owned())
    }
}

impl From<Vec<u8>> for Content {
    fn from(bytes: Vec<u8>) -> Self {
        Content::Bytes(bytes)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    #[serde(default = "Uuid::new_v4")]
    pub id: Uuid,
    pub content: Content,
    #[serde(with = "crate::data::timestamp", default = "Utc::now")]
    pub created_on: DateTime<Utc>,
    #[serde(default)]
    pub message_type: Option<MessageType>,
}

impl Message {
    /// A message with a random id, created now, without a type.
    pub fn new(content: impl Into<Content>) -> Self {
        Message {
            id: Uuid::new_v4(),
            content: content.into(),
            created_on: Utc::now(),
            message_type: None,
        }
    }

    pub fn with_type(mut self, message_type: MessageType) -> Self {
        self.message_type = Some(message_type);
        self
    }
}

/// The outcome of sending a message; stored and serialised as its integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "i32", try_from = "i32")]
#[repr(i32)]
pub enum ResponseStatus {
    Success = 0,
    Failed = 1,
    Error = 2,
    Timeout = 3,
}

impl ResponseStatus {
    pub fn as_i32(self) -> i32 {
        self as i32
    }

    pub fn from_i32(value: i32) -> Result<Self, DataError> {
        match value {
            0 => Ok(ResponseStatus::Success),
            1 => Ok(ResponseStatus::Failed),
            2 => Ok(ResponseStatus::Error),
            3 => Ok(ResponseStatus::Timeout),
            other => Err(DataError::UnknownResponseStatus(other)),
        }
    }

    /// acoupi's name: "SUCCESS", "FAILED", "ERROR" or "TIMEOUT".
    pub fn name(self) -> &'static str {
        match self {
            ResponseStatus::Success => "SUCCESS",
            ResponseStatus::Failed => "FAILED",
            ResponseStatus::Error => "ERROR",
            ResponseStatus::Timeout => "TIMEOUT",
        }
    }
}

impl From<ResponseStatus> for i32 {
    fn from(status: ResponseStatus) -> i32 {
        status.as_i32()
    }
}

impl TryFrom<i32> for ResponseStatus {
    type Error = DataError;
    fn try_from(value: i32) -> Result<Self, DataError> {
        ResponseStatus::from_i32(value)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub status: ResponseStatus,
    pub message: Message,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(with = "crate::data::timestamp", default = "Utc::now")]
    pub received_on: DateTime<Utc>,
}

impl Response {
    /// A response received now, without content.
    pub fn new(status: ResponseStatus, message: Message) -> Self {
        Response {
            status,
            message,
            content: None,
            received_on: Utc::now(),
        }
    }

    pub fn with_content(mut self, content: impl Into<String>) -> Self {
        self.content = Some(content.into());
        self
    }

    pub fn is_success(&self) -> bool {
        self.status == ResponseStatus::Success
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn response_status_integer_mapping() {
        let all = [
            (ResponseStatus::Success, 0, "SUCCESS"),
            (ResponseStatus::Failed, 1, "FAILED"),
            (ResponseStatus::Error, 2, "ERROR"),
            (ResponseStatus::Timeout, 3, "TIMEOUT"),
        ];
        for (status, value, name) in all {
            assert_eq!(status.as_i32(), value);
            assert_eq!(ResponseStatus::from_i32(value), Ok(status));
            assert_eq!(status.name(), name);
            assert_eq!(serde_json::to_value(status).unwrap(), json!(value));
        }
        assert_eq!(
            ResponseStatus::from_i32(4),
            Err(DataError::UnknownResponseStatus(4))
        );
        assert_eq!(
            ResponseStatus::from_i32(-1),
            Err(DataError::UnknownResponseStatus(-1))
        );
        assert!(serde_json::from_value::<ResponseStatus>(json!(4)).is_err());
        assert_eq!(
            serde_json::from_value::<ResponseStatus>(json!(3)).unwrap(),
            ResponseStatus::Timeout
        );
    }

    #[test]
    fn message_defaults_and_type() {
        let m = Message::new("hello");
        assert_eq!((m.content.as_text(), m.message_type), (Some("hello"), None));
        let m = m.with_type(MessageType::Heartbeat);
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["message_type"], "heartbeat");
        assert_eq!(json["content"], "hello");
        assert_eq!(serde_json::from_value::<Message>(json).unwrap(), m);
    }

    #[test]
    fn byte_content_round_trips() {
        let m = Message::new(vec![0u8, 159, 255]).with_type(MessageType::Detection);
        assert_eq!(m.content.as_bytes(), &[0, 159, 255]);
        assert_eq!(m.content.as_text(), None);
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["content"], json!([0, 159, 255]));
        assert_eq!(serde_json::from_value::<Message>(json).unwrap(), m);
    }

    #[test]
    fn response_json() {
        let r = Response::new(ResponseStatus::Failed, Message::new("x")).with_content("503");
        assert!(!r.is_success());
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["status"], 1);
        assert_eq!(json["content"], "503");
        assert_eq!(serde_json::from_value::<Response>(json).unwrap(), r);
    }
}
