//! Tests of `messenger.mqtt` against a real broker (rumqttd, embedded, on a free port of
//! 127.0.0.1), a real subscriber, a TCP relay that plays the uplink going down and up, a
//! TLS listener with a CA made at test time (rcgen), and the DuckDB message store.

#![allow(
    unsafe_code,
    reason = "a test sets environment variables (std::env::set_var)"
)]

use std::io::Read;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use acoupi_engine::config::load_str;
use acoupi_engine::config::pipeline::MessageOrder;
use acoupi_engine::data::MessageType;
use acoupi_engine::store::MessageStore;
use acoupi_engine::tasks::{MessagingTask, Named};
use acoupi_store_duckdb::DuckDbStore;

use super::*;

/// Every wait in these tests ends within this.
const PATIENCE: Duration = Duration::from_secs(20);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something listens on `port`.
fn wait_for_port(port: u16) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < PATIENCE, "nothing listens on port {port}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// An embedded rumqttd broker on 127.0.0.1 (it runs until the test process ends).
pub(crate) struct Broker {
    pub(crate) port: u16,
}

impl Broker {
    pub(crate) fn start(auth: Option<(&str, &str)>, tls: Option<(&Path, &Path)>) -> Broker {
        let port = free_port();
        let mut server = serde_json::json!({
            "name": "v4-test",
            "listen": format!("127.0.0.1:{port}"),
            "next_connection_delay_ms": 1,
            "connections": {
                "connection_timeout_ms": 5000,
                "max_payload_size": 1_048_576,
                "max_inflight_count": 100,
                "dynamic_filters": true
            }
        });
        if let Some((user, password)) = auth {
            server["connections"]["auth"] = serde_json::json!({ user: password });
        }
        if let Some((cert, key)) = tls {
            server["tls"] = serde_json::json!({ "certpath": cert, "keypath": key });
        }
        let config = serde_json::json!({
            "id": 0,
            "router": {
                "max_connections": 100,
                "max_outgoing_packet_count": 200,
                "max_segment_size": 10_485_760,
                "max_segment_count": 10
            },
            "v4": { "1": server }
        });
        let config: rumqttd::Config = serde_json::from_value(config).unwrap();
        thread::spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(error) = broker.start() {
                eprintln!("test broker stopped: {error}");
            }
        });
        wait_for_port(port);
        Broker { port }
    }
}

/// A subscriber to `topic` on the broker, collecting the payloads it receives.
pub(crate) struct Subscriber {
    received: Receiver<(String, Vec<u8>)>,
}

impl Subscriber {
    pub(crate) fn new(port: u16, topic: &str) -> Subscriber {
        let mut options = MqttOptions::new(format!("subscriber-{port}"), "127.0.0.1", port);
        options.set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
        let (client, mut connection) = rumqttc::Client::new(options, 10);
        client.subscribe(topic, QoS::ExactlyOnce).unwrap();
        let (tx, received) = mpsc::channel();
        let (subscribed_tx, subscribed) = mpsc::channel();
        thread::spawn(move || {
            let _client = client;
            for event in connection.iter() {
                match event {
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        let _ = subscribed_tx.send(());
                    }
                    Ok(Event::Incoming(Incoming::Publish(publish))) => {
                        if tx
                            .send((publish.topic.clone(), publish.payload.to_vec()))
                            .is_err()
                        {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        subscribed
            .recv_timeout(PATIENCE)
            .expect("the subscription was acknowledged");
        Subscriber { received }
    }

    /// The next publish received, waiting at most `wait`.
    pub(crate) fn next(&self, wait: Duration) -> Option<(String, Vec<u8>)> {
        self.received.recv_timeout(wait).ok()
    }
}

/// A TCP relay in front of the broker: `down` closes its port and cuts every connection
/// (the uplink is gone), `up` opens the same port again.
struct Relay {
    port: u16,
    target: u16,
    running: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn new(target: u16) -> Relay {
        let relay = Relay {
            port: free_port(),
            target,
            running: Arc::new(AtomicBool::new(false)),
            connections: Arc::default(),
        };
        relay.up();
        relay
    }

    fn up(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        self.running.store(true, Ordering::SeqCst);
        let (running, connections, target) =
            (self.running.clone(), self.connections.clone(), self.target);
        thread::spawn(move || {
            for client in listener.incoming() {
                if !running.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let mut open = connections.lock().unwrap();
                open.push(client.try_clone().unwrap());
                open.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        wait_for_port(self.port);
    }

    fn down(&self) {
        self.running.store(false, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag and drops the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        for stream in self.connections.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(start.elapsed() < PATIENCE, "the relay's port stays open");
            thread::sleep(Duration::from_millis(20));
        }
    }
}

fn build(component: &str) -> Result<Arc<dyn Messenger>, String> {
    let pipeline = crate::testing::messenger_pipeline(
        "messenger.mqtt",
        "mqtt",
        "north/field",
        component,
        "/station/pipeline.toml",
    );
    crate::testing::build_messenger(&pipeline.map_err(|e| e.to_string())?)
}

fn send(messenger: &dyn Messenger, text: &str) -> Response {
    messenger.send(&Message::new(text)).unwrap()
}

#[test]
fn publishes_to_the_templated_topic_and_reports_each_qos_acknowledged() {
    let broker = Broker::start(None, None);
    let subscriber = Subscriber::new(broker.port, "acoupi/#");
    for qos in [0, 1, 2] {
        let messenger = build(&format!(
            "host = \"127.0.0.1\"\nport = {}\nqos = {qos}\nclient_id = \"station-{qos}\"",
            broker.port
        ))
        .unwrap();
        let payload = format!("{{\"qos\": {qos}, \"text\": \"Turdus merula ♪\"}}");
        let response = send(messenger.as_ref(), &payload);
        assert_eq!(
            response.status,
            ResponseStatus::Success,
            "QoS {qos}: {:?}",
            response.content
        );
        let (topic, bytes) = subscriber
            .next(PATIENCE)
            .expect("the subscriber got the message");
        // `/` in the deployment name does not open a sub-topic.
        assert_eq!(topic, "acoupi/north_field");
        assert_eq!(
            bytes,
            payload.as_bytes(),
            "QoS {qos}: the payload arrives byte for byte"
        );
    }
}

#[test]
fn with_use_message_type_each_type_goes_to_its_own_sub_topic() {
    let broker = Broker::start(None, None);
    let subscriber = Subscriber::new(broker.port, "sites/#");
    let messenger = build(&format!("host = \"127.0.0.1\"\nport = {}\ntopic = \"sites/{{deployment}}\"\nuse_message_type = true", broker.port)).unwrap();
    for (message, topic) in [
        (
            Message::new("d").with_type(MessageType::Detection),
            "sites/north_field/detection",
        ),
        (
            Message::new("s").with_type(MessageType::Summary),
            "sites/north_field/summary",
        ),
        (Message::new("m"), "sites/north_field/message"),
    ] {
        assert!(messenger.send(&message).unwrap().is_success());
        assert_eq!(
            subscriber.next(PATIENCE).map(|(t, _)| t).as_deref(),
            Some(topic)
        );
    }
}

#[test]
fn an_outage_leaves_messages_unsent_and_they_go_out_once_in_order_when_it_ends() {
    let broker = Broker::start(None, None);
    let relay = Relay::new(broker.port);
    let subscriber = Subscriber::new(broker.port, "acoupi/#");
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(DuckDbStore::open(&dir.path().join("store.duckdb")).unwrap());
    let messenger = build(&format!(
        "host = \"127.0.0.1\"\nport = {}\ntimeout = \"2s\"",
        relay.port
    ))
    .unwrap();
    let task = MessagingTask {
        stage: "send".into(),
        message_store: store.clone(),
        messengers: vec![Named::new("mqtt", messenger)],
        limit: 100,
        order: MessageOrder::OldestFirst,
    };
    let mut created = Vec::new();
    let mut queue = |text: String| {
        let mut message = Message::new(text.clone());
        // Distinct creation times: the store orders by them.
        message.created_on += chrono::Duration::milliseconds(created.len() as i64);
        store.store_message(&message).unwrap();
        created.push(text);
    };
    for i in 0..3 {
        queue(format!("message {i}"));
    }
    assert_eq!(task.run(chrono::Utc::now()).successful, 3);

    relay.down();
    for i in 3..6 {
        queue(format!("message {i}"));
    }
    let report = task.run(chrono::Utc::now());
    assert_eq!((report.selected, report.successful), (3, 0), "{report:?}");
    assert_eq!(
        (report.failed, report.deferred),
        (1, 2),
        "the first attempt is a stored ERROR or TIMEOUT; the rest wait"
    );
    assert_eq!(
        store
            .get_unsent_messages(100, MessageOrder::OldestFirst)
            .unwrap()
            .len(),
        3
    );

    relay.up();
    let start = Instant::now();
    while !store
        .get_unsent_messages(100, MessageOrder::OldestFirst)
        .unwrap()
        .is_empty()
    {
        assert!(
            start.elapsed() < PATIENCE,
            "the messages were not delivered after the broker came back"
        );
        task.run(chrono::Utc::now());
        thread::sleep(Duration::from_millis(200));
    }
    let mut received = Vec::new();
    while let Some((_, payload)) = subscriber.next(Duration::from_millis(500)) {
        received.push(String::from_utf8(payload).unwrap());
    }
    assert_eq!(
        received, created,
        "every message exactly once, oldest first"
    );
}

/// A server that reads the CONNECT and answers CONNACK with `code` (4: bad user name or
/// password, 5: not authorised), as mosquitto does for a refused login.
fn refusing_server(code: u8) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buffer = [0u8; 512];
            if matches!(stream.read(&mut buffer), Ok(n) if n > 0) {
                let _ = std::io::Write::write_all(&mut stream, &[0x20, 0x02, 0x00, code]);
            }
        }
    });
    port
}

#[test]
fn a_refused_login_is_failed_with_the_reason_and_the_right_password_succeeds() {
    // SAFETY: tests in this crate read these two variables only here.
    unsafe {
        std::env::set_var("ACOUPI_TEST_MQTT_GOOD", "s3cret");
        std::env::set_var("ACOUPI_TEST_MQTT_BAD", "guess");
    }
    let component = |port: u16, variable: &str| {
        format!(
            "host = \"127.0.0.1\"\nport = {port}\nusername = \"station\"\npassword_env = \"{variable}\""
        )
    };

    for (code, reason) in [(4, "bad user name or password"), (5, "not authorised")] {
        let port = refusing_server(code);
        let refused = send(
            build(&component(port, "ACOUPI_TEST_MQTT_BAD"))
                .unwrap()
                .as_ref(),
            "hello",
        );
        assert_eq!(
            refused.status,
            ResponseStatus::Failed,
            "{:?}",
            refused.content
        );
        let content = refused.content.unwrap_or_default();
        assert!(
            content.contains("refused") && content.contains(reason),
            "{content}"
        );
        assert!(
            !content.contains("guess"),
            "the password never appears: {content}"
        );
    }

    // rumqttd closes the connection without a CONNACK on a wrong password: nothing says
    // it was refused, so it is an ERROR (and the message stays unsent).
    let broker = Broker::start(Some(("station", "s3cret")), None);
    let dropped = send(
        build(&component(broker.port, "ACOUPI_TEST_MQTT_BAD"))
            .unwrap()
            .as_ref(),
        "hello",
    );
    assert_eq!(
        dropped.status,
        ResponseStatus::Error,
        "{:?}",
        dropped.content
    );
    let accepted = send(
        build(&component(broker.port, "ACOUPI_TEST_MQTT_GOOD"))
            .unwrap()
            .as_ref(),
        "hello",
    );
    assert_eq!(
        accepted.status,
        ResponseStatus::Success,
        "{:?}",
        accepted.content
    );

    // The same password from a private file; a file others can read stops the start.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mqtt-password");
        std::fs::write(&file, "s3cret\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let from_file = format!(
            "host = \"127.0.0.1\"\nport = {}\nusername = \"station\"\npassword_file = \"{}\"",
            broker.port,
            file.display()
        );
        let accepted = send(build(&from_file).unwrap().as_ref(), "hello");
        assert_eq!(
            accepted.status,
            ResponseStatus::Success,
            "{:?}",
            accepted.content
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let error = build(&from_file).err().unwrap();
        assert!(
            error.contains("password_file") && error.contains("chmod 600"),
            "{error}"
        );
        // The one spelling of a secret, `password = { file = ... }`, reads the same file.
        let secret = format!(
            "host = \"127.0.0.1\"\nport = {}\nusername = \"station\"\npassword = {{ file = \"{}\" }}",
            broker.port,
            file.display()
        );
        let error = build(&secret).err().unwrap();
        assert!(
            error.contains("password: ") && error.contains("chmod 600"),
            "{error}"
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let accepted = send(build(&secret).unwrap().as_ref(), "hello");
        assert_eq!(
            accepted.status,
            ResponseStatus::Success,
            "{:?}",
            accepted.content
        );
    }

    // And `password = { env = ... }`, like the older `password_env`.
    let secret = format!(
        "host = \"127.0.0.1\"\nport = {}\nusername = \"station\"\npassword = {{ env = \"ACOUPI_TEST_MQTT_GOOD\" }}",
        broker.port
    );
    let accepted = send(build(&secret).unwrap().as_ref(), "hello");
    assert_eq!(
        accepted.status,
        ResponseStatus::Success,
        "{:?}",
        accepted.content
    );
}

#[test]
fn tls_with_the_given_ca_succeeds_and_an_untrusted_server_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "acoupi test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let ca_path = write("ca.pem", ca.pem());
    let cert_path = write("server.pem", server.pem());
    let key_path = write("server.key", server_key.serialize_pem());
    let broker = Broker::start(None, Some((&cert_path, &key_path)));

    let trusted = build(&format!(
        "host = \"localhost\"\nport = {}\ntls = {{ ca = \"{}\" }}",
        broker.port,
        ca_path.display()
    ))
    .unwrap();
    let response = send(trusted.as_ref(), "over TLS");
    assert_eq!(
        response.status,
        ResponseStatus::Success,
        "{:?}",
        response.content
    );

    // Its own certificate as the only trusted one: the server's chain does not verify.
    let untrusted = build(&format!(
        "host = \"localhost\"\nport = {}\ntls = {{ ca = \"{}\" }}",
        broker.port,
        cert_path.display()
    ))
    .unwrap();
    let response = send(untrusted.as_ref(), "over TLS");
    assert_eq!(
        response.status,
        ResponseStatus::Error,
        "{:?}",
        response.content
    );
}

#[test]
fn a_broker_that_never_answers_is_a_timeout_and_a_closed_port_an_error() {
    // Accepts connections and reads them, but never sends a CONNACK.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    thread::spawn(move || {
        let mut open = Vec::new();
        for stream in silent.incoming().flatten() {
            let mut reader = stream.try_clone().unwrap();
            open.push(stream);
            thread::spawn(move || {
                let mut buffer = [0u8; 256];
                while matches!(reader.read(&mut buffer), Ok(n) if n > 0) {}
            });
        }
    });
    let messenger = build(&format!(
        "host = \"127.0.0.1\"\nport = {port}\ntimeout = \"1s\""
    ))
    .unwrap();
    let response = send(messenger.as_ref(), "anyone?");
    assert_eq!(
        response.status,
        ResponseStatus::Timeout,
        "{:?}",
        response.content
    );

    let closed = free_port();
    let messenger = build(&format!(
        "host = \"127.0.0.1\"\nport = {closed}\ntimeout = \"2s\""
    ))
    .unwrap();
    let response = send(messenger.as_ref(), "anyone?");
    assert_eq!(
        response.status,
        ResponseStatus::Error,
        "{:?}",
        response.content
    );
    let reason = response.content.unwrap_or_default();
    assert!(
        reason.contains(&format!("127.0.0.1:{closed}")),
        "the reason names the broker: {reason}"
    );
    // While it stays down, later sends answer at once instead of waiting for the timeout.
    let start = Instant::now();
    assert_eq!(
        send(messenger.as_ref(), "again").status,
        ResponseStatus::Error
    );
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[test]
fn configuration_mistakes_are_reported_when_the_file_is_read_or_the_station_starts() {
    let cases: &[(&str, &str)] = &[
        ("host = \"mqtt://example.org\"", "host name or address only"),
        ("host = \"example.org:1883\"", "give the port in `port`"),
        ("host = \"example.org\"\ntopic = \"acoupi/#\"", "wildcard"),
        (
            "host = \"example.org\"\ntopic = \"acoupi/{station}\"",
            "the only placeholder is `{deployment}`",
        ),
        ("host = \"example.org\"\nqos = 3", "qos must be 0, 1 or 2"),
        (
            "host = \"example.org\"\nkeep_alive = \"500ms\"",
            "keep_alive must be at least 1 s",
        ),
        (
            "host = \"example.org\"\ninsecure = true\npassword_env = \"X\"",
            "a password needs a username",
        ),
        (
            "host = \"example.org\"\ninsecure = true\nusername = \"u\"\npassword_env = \"ACOUPI_TEST_MQTT_UNSET\"",
            "`ACOUPI_TEST_MQTT_UNSET` is not set",
        ),
        (
            "host = \"example.org\"\nusername = \"u\"\npassword_env = \"X\"",
            "the password would be sent in clear",
        ),
        (
            "host = \"example.org\"\nusername = \"u\"\npassword = { env = \"X\" }",
            "the password would be sent in clear",
        ),
        (
            "host = \"example.org\"\ninsecure = true\nusername = \"u\"\npassword = { env = \"X\" }\npassword_env = \"X\"",
            "give `password` or its older spelling (password_env, password_file), not both",
        ),
        (
            "host = \"example.org\"\ninsecure = true\nusername = \"u\"\npassword = { env = \"A=B\" }",
            "invalid environment variable name `A=B`",
        ),
        (
            "host = \"example.org\"\ntls = { ca = \"missing-ca.pem\" }",
            "cannot read the CA file `/station/missing-ca.pem`",
        ),
        ("host = \"example.org\"\npassword = \"plain\"", "password"),
    ];
    for (component, expected) in cases {
        let error = match build(component) {
            Ok(_) => panic!("`{component}` was accepted"),
            Err(error) => error,
        };
        assert!(
            error.contains(expected),
            "`{component}`: expected `{expected}` in: {error}"
        );
    }
}

#[test]
fn the_topic_template_replaces_the_deployment_name() {
    let template = TopicTemplate("sites/{deployment}/detections".into());
    assert_eq!(template.render("oak wood"), "sites/oak wood/detections");
    assert_eq!(template.render("a/b+c#"), "sites/a_b_c_/detections");
}

#[test]
fn a_heartbeat_reaches_the_broker_with_every_configured_metric_and_its_unit() {
    use acoupi_engine::tasks::HeartbeatTask;

    let broker = Broker::start(None, None);
    let subscriber = Subscriber::new(broker.port, "acoupi/#");
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(DuckDbStore::open(&dir.path().join("store.duckdb")).unwrap());
    let source = format!(
        "[deployment]\nname = \"roof\"\n\n[components.mqtt]\ntype = \"messenger.mqtt\"\nhost = \"127.0.0.1\"\nport = {}\n\n\
         [stages.beat]\nkind = \"heartbeat\"\nmessengers = [\"mqtt\"]\n\
         metrics = [{{ type = \"metric.system\" }}, {{ type = \"metric.station\" }}]\nschedule = {{ every = \"10min\" }}\n",
        broker.port
    );
    let pipeline = load_str(
        Path::new("/station/pipeline.toml"),
        &source,
        &crate::registry(),
    )
    .unwrap();
    let mut messengers = Vec::new();
    let mut metrics = Vec::new();
    for instance in &pipeline.components {
        let ctx = BuildContext {
            settings: pipeline.settings.clone(),
            instance: instance.name.clone(),
            store: Some(store.clone()),
            telemetry: Default::default(),
        };
        match instance.settings.build(&ctx).unwrap() {
            Built::Messenger(m) => messengers.push(Named::new(instance.name.clone(), m)),
            Built::Metric(m) => metrics.push(Named::new(instance.name.clone(), m)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((messengers.len(), metrics.len()), (1, 2));
    let task = HeartbeatTask {
        stage: "beat".into(),
        messengers,
        metrics,
        device_id: "roof-pi".into(),
        store: store.clone(),
    };
    let report = task.run(chrono::Utc::now());
    assert_eq!(report.delivered, 1);

    let (topic, payload) = subscriber.next(PATIENCE).expect("the heartbeat arrived");
    assert_eq!(topic, "acoupi/roof");
    let heartbeat: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(heartbeat["device_id"], "roof-pi");
    assert_eq!(heartbeat["status"], "OK");
    let sent = heartbeat["metrics"].as_array().unwrap();
    assert_eq!(sent.len(), report.metrics);
    let names: Vec<&str> = sent.iter().map(|m| m["name"].as_str().unwrap()).collect();
    for expected in [
        "cpu_usage",
        "consumed_memory",
        "total_memory",
        "load_1min",
        "uptime",
        "remaining_storage",
        "remaining_storage_store",
        "recordings_since_last",
        "unsent_messages",
    ] {
        assert!(
            names.contains(&expected),
            "`{expected}` missing from {names:?}"
        );
    }
    for metric in sent {
        assert!(metric["value"].is_number(), "{metric}");
        assert!(
            !metric["unit"].as_str().unwrap_or_default().is_empty(),
            "every metric has a unit: {metric}"
        );
        assert!(
            metric["captured_on"]
                .as_str()
                .is_some_and(|t| t.ends_with("+00:00") || t.ends_with('Z')),
            "{metric}"
        );
    }
}

#[test]
fn a_password_in_clear_to_another_machine_is_refused_at_its_line_unless_insecure() {
    use acoupi_engine::config::Code;
    use acoupi_engine::config::diagnostics::line_col;

    let load = |component: &str| {
        crate::testing::messenger_pipeline(
            "messenger.mqtt",
            "mqtt",
            "north",
            component,
            "/station/pipeline.toml",
        )
    };
    // The only problem of `component`, and where it points.
    let only_problem = |component: &str| {
        let errors = load(component).unwrap_err();
        assert_eq!(errors.problems.len(), 1, "{errors}");
        let at = line_col(
            &errors.source,
            errors.problems[0].span.clone().unwrap().start,
        );
        (errors, at)
    };
    // The component's keys start on line 6.
    for (component, key_line) in [
        (
            "host = \"mqtt.example.org\"\nusername = \"station\"\npassword_env = \"MQTT_PASSWORD\"",
            8,
        ),
        (
            "host = \"192.168.1.20\"\nusername = \"station\"\npassword_file = \"secret\"",
            8,
        ),
        (
            "host = \"192.168.1.20\"\nusername = \"station\"\npassword = { file = \"secret\" }",
            8,
        ),
    ] {
        let (errors, at) = only_problem(component);
        let problem = &errors.problems[0];
        assert_eq!(problem.code, Code::CredentialsInClear, "{errors}");
        assert_eq!(
            at,
            (key_line, 1),
            "the problem points at the password's key: {errors}"
        );
        assert!(
            problem.message.contains("in clear")
                && problem
                    .help
                    .as_deref()
                    .unwrap_or("")
                    .contains("insecure = true"),
            "{errors}"
        );
    }
    // A bad secret is reported at its own line, while the pipeline is validated.
    for (component, says) in [
        (
            "host = \"localhost\"\nusername = \"station\"\npassword = { env = \"A=B\" }",
            "invalid environment variable name `A=B`",
        ),
        (
            "host = \"localhost\"\nusername = \"station\"\npassword = \"s3cret\"",
            "never written in the pipeline file",
        ),
    ] {
        let (errors, at) = only_problem(component);
        assert!(errors.problems[0].message.contains(says), "{errors}");
        assert_eq!(at.0, 8, "the problem points at the password: {errors}");
    }
    for passes in [
        "host = \"mqtt.example.org\"\nusername = \"station\"\npassword_env = \"X\"\ntls = {}",
        "host = \"mqtt.example.org\"\nusername = \"station\"\npassword_env = \"X\"\ninsecure = true",
        "host = \"localhost\"\nusername = \"station\"\npassword_env = \"X\"",
        "host = \"127.0.0.1\"\nusername = \"station\"\npassword_env = \"X\"",
        "host = \"::1\"\nusername = \"station\"\npassword_env = \"X\"",
        "host = \"mqtt.example.org\"\nusername = \"station\"",
    ] {
        assert!(
            load(passes).is_ok(),
            "`{passes}` is refused: {}",
            load(passes).unwrap_err()
        );
    }
}

/// A broker played from a script on 127.0.0.1: it accepts one client, answers CONNECT and
/// PINGREQ, reports each PUBLISH's packet id and acknowledges (PUBACK) only what
/// `acks(n, pkid)` says for the `n`-th publish (1-based), or what the test sends itself.
struct ScriptedBroker {
    port: u16,
    publishes: Receiver<u16>,
    writer: Arc<Mutex<Option<TcpStream>>>,
}

impl ScriptedBroker {
    fn start(acks: impl Fn(usize, u16) -> Vec<u16> + Send + 'static) -> ScriptedBroker {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let writer: Arc<Mutex<Option<TcpStream>>> = Arc::default();
        let (tx, publishes) = mpsc::channel();
        let shared = writer.clone();
        thread::spawn(move || {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            *shared.lock().unwrap() = Some(stream.try_clone().unwrap());
            let write = |bytes: &[u8]| {
                if let Some(out) = shared.lock().unwrap().as_mut() {
                    let _ = std::io::Write::write_all(out, bytes);
                }
            };
            let mut count = 0;
            loop {
                let mut first = [0u8; 1];
                if stream.read_exact(&mut first).is_err() {
                    return;
                }
                let (mut length, mut shift) = (0usize, 0);
                loop {
                    let mut byte = [0u8; 1];
                    if stream.read_exact(&mut byte).is_err() {
                        return;
                    }
                    length |= usize::from(byte[0] & 0x7f) << shift;
                    shift += 7;
                    if byte[0] & 0x80 == 0 {
                        break;
                    }
                }
                let mut body = vec![0u8; length];
                if stream.read_exact(&mut body).is_err() {
                    return;
                }
                match first[0] >> 4 {
                    1 => write(&[0x20, 0x02, 0x00, 0x00]),
                    12 => write(&[0xd0, 0x00]),
                    3 if (first[0] >> 1) & 3 > 0 => {
                        let topic = usize::from(u16::from_be_bytes([body[0], body[1]]));
                        let pkid = u16::from_be_bytes([body[2 + topic], body[3 + topic]]);
                        count += 1;
                        let _ = tx.send(pkid);
                        for ack in acks(count, pkid) {
                            let [hi, lo] = ack.to_be_bytes();
                            write(&[0x40, 0x02, hi, lo]);
                        }
                    }
                    14 => return,
                    _ => {}
                }
            }
        });
        ScriptedBroker {
            port,
            publishes,
            writer,
        }
    }

    /// Sends a PUBACK for `pkid` now.
    fn ack(&self, pkid: u16) {
        let [hi, lo] = pkid.to_be_bytes();
        let mut writer = self.writer.lock().unwrap();
        std::io::Write::write_all(
            writer.as_mut().expect("a client is connected"),
            &[0x40, 0x02, hi, lo],
        )
        .unwrap();
    }

    /// The packet id of the next publish the broker received.
    fn next_publish(&self) -> u16 {
        self.publishes
            .recv_timeout(PATIENCE)
            .expect("the broker received a publish")
    }
}

#[test]
fn a_late_ack_of_a_timed_out_publish_does_not_mark_the_next_message_success() {
    // Publish 1 is never acknowledged in time; publish 2 brings the late PUBACK of 1 and
    // none of its own; publish 3 brings the PUBACKs of 2 and 3.
    let broker = ScriptedBroker::start(|n, _| match n {
        2 => vec![1],
        3 => vec![2, 3],
        _ => vec![],
    });
    let messenger = build(&format!(
        "host = \"127.0.0.1\"\nport = {}\ntimeout = \"1s\"",
        broker.port
    ))
    .unwrap();
    let first = send(messenger.as_ref(), "one");
    assert_eq!(first.status, ResponseStatus::Timeout, "{:?}", first.content);
    assert_eq!(broker.next_publish(), 1);
    let second = send(messenger.as_ref(), "two");
    assert_eq!(broker.next_publish(), 2);
    assert_eq!(
        second.status,
        ResponseStatus::Timeout,
        "the late ack of 1 is not 2's: {:?}",
        second.content
    );
    let third = send(messenger.as_ref(), "three");
    assert_eq!(broker.next_publish(), 3);
    assert_eq!(third.status, ResponseStatus::Success, "{:?}", third.content);
    assert!(third.content.unwrap_or_default().contains("packet 3"));
}

#[test]
fn a_publish_sent_after_its_timeout_is_not_taken_for_the_next_message() {
    // The broker acknowledges every publish at once except the first and the 102nd. After
    // 100 publishes rumqttc's packet ids wrap to 1, still waiting for its PUBACK: publish
    // 101 is held back and its send times out unsent. While message 102 waits, the late
    // PUBACK of 1 arrives, publish 101 goes out and is acknowledged: that must not be
    // taken for message 102, which is never acknowledged.
    let broker = ScriptedBroker::start(|n, pkid| {
        if n == 1 || n == 102 {
            vec![]
        } else {
            vec![pkid]
        }
    });
    let messenger = build(&format!(
        "host = \"127.0.0.1\"\nport = {}\ntimeout = \"1s\"",
        broker.port
    ))
    .unwrap();
    assert_eq!(
        send(messenger.as_ref(), "message 1").status,
        ResponseStatus::Timeout
    );
    for i in 2..=100 {
        let response = send(messenger.as_ref(), &format!("message {i}"));
        assert_eq!(
            response.status,
            ResponseStatus::Success,
            "message {i}: {:?}",
            response.content
        );
    }
    let held = send(messenger.as_ref(), "message 101");
    assert_eq!(held.status, ResponseStatus::Timeout, "{:?}", held.content);
    assert!(held.content.unwrap_or_default().contains("not sent"));
    let pkids: Vec<u16> = (0..100).map(|_| broker.next_publish()).collect();
    assert_eq!(pkids, (1..=100).collect::<Vec<u16>>());

    let sender = {
        let messenger = messenger.clone();
        thread::spawn(move || send(messenger.as_ref(), "message 102"))
    };
    // Give message 102 time to be queued behind 101 (the outcome must not depend on it).
    thread::sleep(Duration::from_millis(200));
    broker.ack(1);
    let last = sender.join().unwrap();
    assert_eq!(
        (broker.next_publish(), broker.next_publish()),
        (1, 2),
        "101 went out as packet 1, 102 as packet 2"
    );
    assert_ne!(
        last.status,
        ResponseStatus::Success,
        "101's ack is not 102's: {:?}",
        last.content
    );
}
