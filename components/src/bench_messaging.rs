//! The messaging benchmark (not a timed test: it asserts delivery, and prints the rate):
//! messages per second from the DuckDB message store through the send-messages task to a
//! local MQTT broker (embedded rumqttd, QoS 1) and to a local HTTP server (200 for every
//! POST), the store round trip (read unsent, store each response) included.
//!
//! Run it with:
//! `cargo test --release -p acoupi-components bench_messaging -- --ignored --nocapture`
//! (`ACOUPI_BENCH_MESSAGES` sets the number of messages, default 2000).

use std::sync::Arc;
use std::time::Instant;

use acoupi_engine::component::Messenger;
use acoupi_engine::config::pipeline::MessageOrder;
use acoupi_engine::data::Message;
use acoupi_engine::store::MessageStore;
use acoupi_engine::tasks::{MessagingTask, Named};
use acoupi_store_duckdb::DuckDbStore;

use crate::messenger::mqtt::tests::{Broker, Subscriber};

fn messenger(kind: &str, keys: &str) -> Arc<dyn Messenger> {
    crate::testing::build_messenger(
        &crate::testing::messenger_pipeline(kind, "out", "bench", keys, "bench.toml").unwrap(),
    )
    .unwrap()
}

/// Queues `count` detection-sized messages, then runs the task until none is unsent;
/// returns messages per second.
fn deliver_all(name: &str, messenger: Arc<dyn Messenger>, count: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(DuckDbStore::open(&dir.path().join("store.duckdb")).unwrap());
    let payload = format!(
        "{{\"detections\": [{}]}}",
        ["{\"species\": \"Turdus merula\", \"score\": 0.91}"; 8].join(", ")
    );
    for _ in 0..count {
        store.store_message(&Message::new(payload.clone())).unwrap();
    }
    let task = MessagingTask {
        stage: "send".into(),
        message_store: store.clone(),
        messengers: vec![Named::new(name, messenger)],
        limit: 500,
        order: MessageOrder::OldestFirst,
    };
    let start = Instant::now();
    let mut sent = 0;
    while sent < count {
        let report = task.run(chrono::Utc::now());
        assert!(
            report.successful > 0,
            "{name}: nothing delivered: {report:?}"
        );
        sent += report.successful;
    }
    let seconds = start.elapsed().as_secs_f64();
    assert!(
        store
            .get_unsent_messages(10, MessageOrder::OldestFirst)
            .unwrap()
            .is_empty()
    );
    let rate = count as f64 / seconds;
    println!(
        "{name}: {count} messages in {seconds:.2} s = {rate:.0} messages/s (store round trip included)"
    );
    rate
}

#[test]
#[ignore = "a benchmark: run with --ignored --nocapture"]
fn bench_messaging() {
    let count: usize = std::env::var("ACOUPI_BENCH_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);

    let broker = Broker::start(None, None);
    let subscriber = Subscriber::new(broker.port, "acoupi/#");
    deliver_all(
        "mqtt qos1",
        messenger(
            "messenger.mqtt",
            &format!("host = \"127.0.0.1\"\nport = {}\nqos = 1", broker.port),
        ),
        count,
    );
    let mut received = 0;
    while subscriber
        .next(std::time::Duration::from_millis(500))
        .is_some()
    {
        received += 1;
    }
    assert_eq!(received, count, "the subscriber got every message once");

    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let port = server.server_addr().to_ip().map(|a| a.port()).unwrap();
    std::thread::spawn(move || {
        for mut request in server.incoming_requests() {
            let mut body = Vec::new();
            let _ = std::io::Read::read_to_end(request.as_reader(), &mut body);
            let _ = request.respond(tiny_http::Response::empty(200));
        }
    });
    deliver_all(
        "http",
        messenger(
            "messenger.http",
            &format!("url = \"http://127.0.0.1:{port}/messages\""),
        ),
        count,
    );
}
