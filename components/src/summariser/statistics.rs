//! `summariser.statistics`: per tag value, the count and score statistics of the last
//! interval's detections (acoupi's StatisticsDetectionsSummariser, same JSON).

use std::collections::BTreeMap;
use std::sync::Arc;

use acoupi_engine::component::{ComponentResult, Summariser};
use acoupi_engine::config::values::PositiveDuration;
use acoupi_engine::data::timestamp::format_timestamp;
use acoupi_engine::data::{Message, MessageType, ModelOutput};
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};
use acoupi_engine::store::Store;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::{default_interval, default_interval_text, interval_outputs, store_and_interval};

/// Summarise the detections of the last interval: per tag value, the count and the mean
/// (3 decimals), min and max confidence, with the time interval covered.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatisticsSummariserConfig {
    /// The interval summarised, ending when the summary is built. Match it to the summary
    /// stage's schedule so every detection is counted once.
    #[serde(default = "default_interval")]
    #[schemars(default = "default_interval_text")]
    pub interval: PositiveDuration,
}

impl ComponentConfig for StatisticsSummariserConfig {
    const KIND: &'static str = "summariser.statistics";

    fn build(&self, ctx: &BuildContext) -> Result<Built, BuildError> {
        let (store, interval) = store_and_interval(ctx, &self.interval)?;
        Ok(Built::Summariser(Arc::new(StatisticsSummariser {
            store,
            interval,
        })))
    }
}

pub struct StatisticsSummariser {
    store: Arc<dyn Store>,
    interval: chrono::Duration,
}

/// Per tag value: count, sum, min, max of confidence scores.
fn statistics(outputs: &[ModelOutput]) -> BTreeMap<String, (usize, f64, f64, f64)> {
    let mut stats: BTreeMap<String, (usize, f64, f64, f64)> = BTreeMap::new();
    for tag in outputs
        .iter()
        .flat_map(|o| &o.detections)
        .flat_map(|d| &d.tags)
    {
        let entry = stats.entry(tag.tag.value.clone()).or_insert((
            0,
            0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ));
        entry.0 += 1;
        entry.1 += tag.confidence_score;
        entry.2 = entry.2.min(tag.confidence_score);
        entry.3 = entry.3.max(tag.confidence_score);
    }
    stats
}

/// The summary JSON: `{ "<tag value>": { "mean", "min", "max", "count" }, ...,
/// "timeinterval": { "starttime", "endtime" } }`.
pub fn summary_json(outputs: &[ModelOutput], start: DateTime<Utc>, end: DateTime<Utc>) -> Value {
    let mut summary = Map::new();
    for (value, (count, sum, min, max)) in statistics(outputs) {
        let mean = (sum / count as f64 * 1000.0).round() / 1000.0;
        summary.insert(
            value,
            json!({ "mean": mean, "min": min, "max": max, "count": count }),
        );
    }
    summary.insert(
        "timeinterval".into(),
        json!({ "starttime": format_timestamp(&start), "endtime": format_timestamp(&end) }),
    );
    Value::Object(summary)
}

impl Summariser for StatisticsSummariser {
    fn build_summary(&self, now: DateTime<Utc>) -> ComponentResult<Vec<Message>> {
        let (start, outputs) = interval_outputs(self.store.as_ref(), self.interval, now)?;
        let content = summary_json(&outputs, start, now).to_string();
        Ok(vec![Message::new(content).with_type(MessageType::Summary)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{detection, output};

    #[test]
    fn per_tag_value_statistics_with_the_interval() {
        let outputs = vec![
            output(vec![detection(
                0.9,
                &[
                    ("species", "Turdus merula", 0.9),
                    ("species", "Erithacus rubecula", 0.4),
                ],
            )]),
            output(vec![
                detection(0.7, &[("species", "Turdus merula", 0.6)]),
                detection(0.8, &[("species", "Turdus merula", 0.8)]),
            ]),
        ];
        let end = DateTime::parse_from_rfc3339("2026-05-01T07:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let start = end - chrono::Duration::hours(1);
        let json = summary_json(&outputs, start, end);
        assert_eq!(
            json["Turdus merula"],
            json!({ "mean": 0.767, "min": 0.6, "max": 0.9, "count": 3 })
        );
        assert_eq!(json["Erithacus rubecula"]["count"], 1);
        assert_eq!(
            json["timeinterval"],
            json!({ "starttime": "2026-05-01T06:00:00+00:00", "endtime": "2026-05-01T07:00:00+00:00" })
        );
    }

    #[test]
    fn an_empty_interval_still_reports_its_time_range() {
        let end = Utc::now();
        let json = summary_json(&[], end - chrono::Duration::hours(1), end);
        assert_eq!(json.as_object().unwrap().len(), 1);
    }
}
