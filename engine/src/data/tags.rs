//! Tag (a key/value label such as `species`/`Turdus merula`) and PredictedTag (a tag with
//! the model's confidence).

use serde::{Deserialize, Serialize};

use super::{DataError, check_score};

/// A label. Equality, ordering and hashing are by (key, value).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

impl Tag {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Tag {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// A tag with a confidence score in [0, 1] (default 1.0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictedTag {
    pub tag: Tag,
    #[serde(default = "certain")]
    pub confidence_score: f64,
}

fn certain() -> f64 {
    1.0
}

impl PredictedTag {
    pub fn new(tag: Tag, confidence_score: f64) -> Result<Self, DataError> {
        check_score("confidence_score", confidence_score)?;
        Ok(PredictedTag {
            tag,
            confidence_score,
        })
    }

    pub fn validate(&self) -> Result<(), DataError> {
        check_score("confidence_score", self.confidence_score)
    }
}

/// A tag predicted with confidence 1.0.
impl From<Tag> for PredictedTag {
    fn from(tag: Tag) -> Self {
        PredictedTag {
            tag,
            confidence_score: certain(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn tag_equality_and_hash_by_key_and_value() {
        let a = Tag::new("species", "Turdus merula");
        assert_eq!(a, Tag::new("species", "Turdus merula"));
        assert_ne!(a, Tag::new("species", "Erithacus rubecula"));
        assert_ne!(a, Tag::new("genus", "Turdus merula"));
        let set: HashSet<Tag> = [a.clone(), Tag::new("species", "Turdus merula")].into();
        assert_eq!(set.len(), 1);
        assert!(Tag::new("a", "z") < Tag::new("b", "a"));
    }

    #[test]
    fn confidence_score_range() {
        let tag = Tag::new("k", "v");
        assert_eq!(
            PredictedTag::new(tag.clone(), 0.0)
                .unwrap()
                .confidence_score,
            0.0
        );
        assert!(PredictedTag::new(tag.clone(), 1.0).is_ok());
        assert_eq!(
            PredictedTag::new(tag.clone(), 1.5).unwrap_err(),
            DataError::ScoreOutOfRange {
                field: "confidence_score",
                value: 1.5
            }
        );
        assert!(PredictedTag::new(tag.clone(), -0.1).is_err());
        assert!(PredictedTag::new(tag.clone(), f64::NAN).is_err());
        let mut p = PredictedTag::from(tag);
        assert_eq!(p.confidence_score, 1.0);
        p.confidence_score = 2.0;
        assert!(p.validate().is_err());
    }

    #[test]
    fn json_shape_and_default_score() {
        let p = PredictedTag::new(Tag::new("species", "Turdus merula – Amsel"), 0.5).unwrap();
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!({"tag":{"key":"species","value":"Turdus merula – Amsel"},"confidence_score":0.5})
        );
        let q: PredictedTag = serde_json::from_str(r#"{"tag":{"key":"k","value":"v"}}"#).unwrap();
        assert_eq!(q.confidence_score, 1.0);
    }
}
