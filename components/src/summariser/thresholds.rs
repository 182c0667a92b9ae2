//! `summariser.thresholds`: per tag value, the count and mean score of the last interval's
//! detections in a low, mid and high band (acoupi's ThresholdsDetectionsSummariser, same
//! keys).

use std::collections::BTreeMap;
use std::sync::Arc;

use acoupi_engine::component::{ComponentResult, Summariser};
use acoupi_engine::config::Code;
use acoupi_engine::config::diagnostics::KeyProblem;
use acoupi_engine::config::values::{PositiveDuration, Score};
use acoupi_engine::data::timestamp::format_timestamp;
use acoupi_engine::data::{Message, MessageType, ModelOutput};
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};
use acoupi_engine::store::Store;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::{default_interval, default_interval_text, interval_outputs, store_and_interval};

/// Summarise the detections of the last interval in score bands: per tag value, the count
/// and mean score (3 decimals; 0 when the band is empty) of the tags scored in
/// [low, mid), [mid, high) and [high, 1]; tags scored below `low` are not counted.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdsSummariserConfig {
    /// The interval summarised, ending when the summary is built.
    #[serde(default = "default_interval")]
    #[schemars(default = "default_interval_text")]
    pub interval: PositiveDuration,
    /// The lowest score counted (the low band's lower edge).
    #[serde(default = "default_low")]
    #[schemars(default = "default_low")]
    pub low: Score,
    /// Where the mid band starts.
    #[serde(default = "default_mid")]
    #[schemars(default = "default_mid")]
    pub mid: Score,
    /// Where the high band starts.
    #[serde(default = "default_high")]
    #[schemars(default = "default_high")]
    pub high: Score,
}

fn default_low() -> Score {
    Score(0.1)
}
fn default_mid() -> Score {
    Score(0.5)
}
fn default_high() -> Score {
    Score(0.9)
}

impl ComponentConfig for ThresholdsSummariserConfig {
    const KIND: &'static str = "summariser.thresholds";

    fn check(&self) -> Vec<KeyProblem> {
        let (low, mid, high) = (self.low.0, self.mid.0, self.high.0);
        if low < mid && mid < high {
            return Vec::new();
        }
        // The first band edge that does not rise above the one before it.
        let key = if low < mid { "high" } else { "mid" };
        vec![KeyProblem::new(
            &[key],
            Code::OutOfRange,
            format!("the bands must rise: low ({low}) < mid ({mid}) < high ({high})"),
        )]
    }

    fn build(&self, ctx: &BuildContext) -> Result<Built, BuildError> {
        let (low, mid, high) = (self.low.0, self.mid.0, self.high.0);
        let (store, interval) = store_and_interval(ctx, &self.interval)?;
        Ok(Built::Summariser(Arc::new(ThresholdsSummariser {
            store,
            interval,
            bands: [low, mid, high],
        })))
    }
}

pub struct ThresholdsSummariser {
    store: Arc<dyn Store>,
    interval: chrono::Duration,
    bands: [f64; 3],
}

/// The band summary JSON: `{ "<tag value>": { "count_low_threshold", "mean_low_threshold",
/// "count_mid_threshold", ..., "mean_high_threshold" }, ..., "timeinterval": {...} }`.
pub fn thresholds_json(
    outputs: &[ModelOutput],
    [low, mid, high]: [f64; 3],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Value {
    // Per tag value and band: count and sum of scores.
    let mut bands: BTreeMap<String, [(usize, f64); 3]> = BTreeMap::new();
    for tag in outputs
        .iter()
        .flat_map(|o| &o.detections)
        .flat_map(|d| &d.tags)
    {
        let score = tag.confidence_score;
        let band = if score >= high {
            2
        } else if score >= mid {
            1
        } else if score >= low {
            0
        } else {
            continue;
        };
        let entry = &mut bands.entry(tag.tag.value.clone()).or_default()[band];
        entry.0 += 1;
        entry.1 += score;
    }
    let mut summary = Map::new();
    for (value, counts) in bands {
        let mut fields = Map::new();
        for (name, (count, sum)) in ["low", "mid", "high"].iter().zip(counts) {
            let mean = if count == 0 {
                0.0
            } else {
                (sum / count as f64 * 1000.0).round() / 1000.0
            };
            fields.insert(format!("count_{name}_threshold"), json!(count));
            fields.insert(format!("mean_{name}_threshold"), json!(mean));
        }
        summary.insert(value, Value::Object(fields));
    }
    summary.insert(
        "timeinterval".into(),
        json!({ "starttime": format_timestamp(&start), "endtime": format_timestamp(&end) }),
    );
    Value::Object(summary)
}

impl Summariser for ThresholdsSummariser {
    fn build_summary(&self, now: DateTime<Utc>) -> ComponentResult<Vec<Message>> {
        let (start, outputs) = interval_outputs(self.store.as_ref(), self.interval, now)?;
        let content = thresholds_json(&outputs, self.bands, start, now).to_string();
        Ok(vec![Message::new(content).with_type(MessageType::Summary)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{detection, output};

    #[test]
    fn thresholds_count_and_average_each_band_per_tag_value() {
        let outputs = vec![output(vec![
            detection(
                0.9,
                &[
                    ("species", "Turdus merula", 0.95),
                    ("species", "Turdus merula", 0.9),
                    ("species", "Turdus merula", 0.6),
                ],
            ),
            detection(
                0.5,
                &[
                    ("species", "Turdus merula", 0.2),
                    ("species", "Turdus merula", 0.05),
                    ("species", "Erithacus rubecula", 0.5),
                ],
            ),
        ])];
        let end = DateTime::parse_from_rfc3339("2026-05-01T07:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let json = thresholds_json(
            &outputs,
            [0.1, 0.5, 0.9],
            end - chrono::Duration::hours(1),
            end,
        );
        assert_eq!(
            json["Turdus merula"],
            json!({
                "count_low_threshold": 1, "mean_low_threshold": 0.2,
                "count_mid_threshold": 1, "mean_mid_threshold": 0.6,
                "count_high_threshold": 2, "mean_high_threshold": 0.925,
            })
        );
        // The mid band includes its lower edge; empty bands have count and mean 0.
        assert_eq!(json["Erithacus rubecula"]["count_mid_threshold"], 1);
        assert_eq!(json["Erithacus rubecula"]["mean_high_threshold"], 0.0);
        assert_eq!(json["timeinterval"]["endtime"], "2026-05-01T07:00:00+00:00");
    }

    #[test]
    fn bands_that_do_not_rise_are_refused() {
        let config = ThresholdsSummariserConfig {
            interval: default_interval(),
            low: Score(0.5),
            mid: Score(0.5),
            high: Score(0.9),
        };
        let problems = config.check();
        let error = &problems[0].message;
        assert_eq!(problems[0].key, ["mid"]);
        assert!(error.contains("low (0.5) < mid (0.5)"), "{error}");
    }
}
