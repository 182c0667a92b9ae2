//! `messenger.mqtt`: publishes each message to one MQTT topic (MQTT 3.1.1, on `rumqttc`)
//! and turns the broker's answer into a Response. It owns the config (broker, topic
//! template, client id, credentials from the environment, TLS, QoS, keep-alive, timeout),
//! the one connection the component keeps open, and the mapping from MQTT outcomes to
//! response statuses.
//!
//! ```toml
//! [components.broker]
//! type = "messenger.mqtt"
//! host = "mqtt.example.org"
//! port = 8883                         # default 1883, or 8883 with `tls`
//! topic = "acoupi/{deployment}/messages"
//! username = "station-7"
//! password = { env = "MQTT_PASSWORD" } # read from this variable at start, or { file = "..." }
//! tls = { ca = "certs/ca.pem" }       # or `tls = {}` for the system's trusted roots
//! qos = 1
//! ```
//!
//! Statuses: with QoS 1 (PUBACK) or 2 (PUBCOMP) the broker's acknowledgement is SUCCESS;
//! with QoS 0 a message written to the connection is SUCCESS (MQTT gives nothing more). A
//! broker that refuses the connection (bad credentials, not authorised, client id
//! rejected) makes the attempt FAILED with the broker's reason; no connection (refused
//! port, DNS, TLS, broker gone mid-send) is ERROR; no acknowledgement within `timeout` is
//! TIMEOUT. The response's content says why.
//!
//! The connection: one per component, opened when the station starts and kept open by a
//! background thread that drives the MQTT event loop (keep-alive pings, acknowledgements).
//! When it drops, the thread reconnects with exponential backoff (1 s doubling to 60 s);
//! while it is down, `send` answers ERROR at once with the last connection error instead
//! of waiting, so one outage does not stall a batch for `timeout` per message. The
//! message store is the queue: a message that was not acknowledged stays unsent and the
//! send-messages task sends it again on a later run, so after an outage messages go out
//! oldest first. For the same reason rumqttc's own resend queue is emptied whenever the
//! connection drops: a message reported ERROR is never also delivered behind the store's
//! back. A message whose acknowledgement came too late (TIMEOUT) may reach subscribers
//! twice — MQTT's QoS 1 is "at least once"; use QoS 2 where duplicates matter.
//!
//! Acknowledgements are matched to their publish by packet id, and a publish to its packet
//! id by order: rumqttc takes publishes in the order they are queued and reports each as
//! `Outgoing::Publish(pkid)`, so the messenger counts the publishes it queued and the ones
//! reported, and a send takes as its own only the report of its own publish. A late
//! acknowledgement of an earlier, timed-out publish (or the late report of one that waited
//! in the queue past its timeout) never marks a later message SUCCESS. When the connection
//! drops, rumqttc's queue is emptied (see above), so every publish queued so far counts as
//! reported.
//!
//! The password is a secret like any other (`password = { env | file }`); `password_env`
//! and `password_file` are its older spelling, still read.
//!
//! Credentials in clear: a password without `tls` to a host other than this machine
//! (`localhost`, 127.0.0.0/8, ::1) is refused when the pipeline is validated, unless `insecure = true` (then a warning names the messenger at
//! each start).
//!
//! `send` is blocking (the `Messenger` trait runs on the tasks' blocking threads); the
//! event loop runs on its own thread with a one-thread tokio runtime, never on the
//! station's executor.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use acoupi_engine::backoff::Backoff;
use acoupi_engine::component::{Messenger, SendError};
use acoupi_engine::config::Code;
use acoupi_engine::config::diagnostics::KeyProblem;
use acoupi_engine::config::values::{
    BoundedDuration, DurationAtLeast, HumanDuration, PositiveDuration, invalid,
};
use acoupi_engine::data::{Message, Response, ResponseStatus};
use acoupi_engine::error_chain;
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, Incoming, MqttOptions,
    Outgoing, QoS, TlsConfiguration, Transport,
};

use crate::shared::secret::Secret;

pub mod home_assistant;

use home_assistant::{Entities, HomeAssistantSettings, Publisher, RemoveError, StationState};

/// The first wait before reconnecting, doubled after each failed attempt up to
/// [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The largest packet sent or accepted (a full model output can be tens of KiB; rumqttc's
/// default is 10 KiB).
const MAX_PACKET_BYTES: usize = 4 * 1024 * 1024;
/// Where Debian, Raspberry Pi OS and Ubuntu keep the system's trusted CA certificates;
/// `SSL_CERT_FILE` overrides it.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Publish each message to an MQTT broker (3.1.1): an acknowledged publish is SUCCESS, a
/// refused connection FAILED, no connection ERROR, no acknowledgement in time TIMEOUT.
///
/// The password is read from an environment variable or a private file when the
/// station starts, never written in the pipeline file.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MqttMessengerConfig {
    /// The broker's host name or IP address.
    pub host: BrokerHost,
    /// The broker's port. Default: 1883, or 8883 when `tls` is set.
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
    /// The topic messages are published to. `{deployment}` is replaced by the deployment's
    /// name (with `/`, `+` and `#` replaced by `_`).
    #[serde(default = "default_topic")]
    #[schemars(default = "default_topic")]
    pub topic: TopicTemplate,
    /// Publish each message to `<topic>/<message type>` (`detection`, `summary`,
    /// `heartbeat`, ...; `<topic>/message` for a message without a type), as acoupi's
    /// `use_message_type` does, so subscribers can pick what they want.
    #[serde(default)]
    pub use_message_type: bool,
    /// The client id given to the broker. Default: `acoupi-{deployment}` (the device id
    /// from `[device]` when set). `{deployment}` is replaced as in `topic`.
    pub client_id: Option<TopicTemplate>,
    /// The user name, when the broker asks for one.
    pub username: Option<String>,
    /// The password, read when the station starts: `{ env = "MQTT_PASSWORD" }` from that
    /// environment variable (one that is not set stops the station from starting), or
    /// `{ file = "mqtt-password" }` from a file relative to the pipeline file, readable by
    /// its owner only (`chmod 600`: a file others can read stops the station from
    /// starting). Needs `username`.
    pub password: Option<Secret>,
    /// The older spelling of `password = { env = "..." }`: the environment variable
    /// holding the password.
    pub password_env: Option<String>,
    /// The older spelling of `password = { file = "..." }`: a file holding the password.
    pub password_file: Option<PathBuf>,
    /// Connect with TLS: `{}` trusts the system's CA certificates, `{ ca = "ca.pem" }`
    /// trusts the CA certificates in that PEM file (relative to the pipeline file).
    pub tls: Option<TlsSettings>,
    /// The MQTT quality of service: 0 (at most once), 1 (at least once) or 2 (exactly
    /// once).
    #[serde(default = "default_qos", deserialize_with = "qos_0_to_2")]
    #[schemars(range(min = 0, max = 2), default = "default_qos")]
    pub qos: u8,
    /// Ask the broker to keep the last message on the topic for new subscribers.
    #[serde(default)]
    pub retain: bool,
    /// How often the client pings an idle broker; at least 1 s.
    #[serde(
        default = "default_keep_alive",
        deserialize_with = "keep_alive_at_least_1s"
    )]
    #[schemars(default = "default_keep_alive_text")]
    pub keep_alive: DurationAtLeast<1000>,
    /// Start a clean session on each connection (the broker forgets subscriptions and
    /// unacknowledged messages of earlier ones).
    #[serde(default = "default_clean_session")]
    #[schemars(default = "default_clean_session")]
    pub clean_session: bool,
    /// How long to wait for the connection or an acknowledgement before the attempt is a
    /// TIMEOUT.
    #[serde(default = "default_timeout")]
    #[schemars(default = "default_timeout_text")]
    pub timeout: PositiveDuration,
    /// Send the password without `tls` to a broker on another machine. Without it such a
    /// pipeline is refused: anyone on the network path could read the password. With it, a
    /// warning naming this messenger is logged at each start.
    #[serde(default)]
    pub insecure: bool,
    /// Home Assistant: `home_assistant = {}` (or `{ discovery_prefix = "homeassistant" }`)
    /// publishes MQTT discovery configs for one device per station with its sensors (last
    /// species, detections and species today, errors, unsent messages, free disk, CPU
    /// temperature, last heartbeat), their retained state topics under `topic`, and
    /// `<topic>/availability` (`online`, `offline`, and `offline` as the Last Will).
    /// `acoupi ha remove` deletes them.
    pub home_assistant: Option<HomeAssistantSettings>,
}

/// TLS settings of an MQTT connection.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// A PEM file with the CA certificate(s) to trust, relative to the pipeline file.
    /// Default: the system's trusted roots (`SSL_CERT_FILE`, else
    /// /etc/ssl/certs/ca-certificates.crt).
    pub ca: Option<PathBuf>,
}

fn default_topic() -> TopicTemplate {
    TopicTemplate("acoupi/{deployment}".into())
}
fn default_qos() -> u8 {
    1
}
fn qos_0_to_2<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    match <u8 as serde::Deserialize>::deserialize(d)? {
        qos @ 0..=2 => Ok(qos),
        other => Err(invalid(
            Code::OutOfRange,
            format!("qos must be 0, 1 or 2, not {other}"),
        )),
    }
}
fn keep_alive_at_least_1s<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<DurationAtLeast<1000>, D::Error> {
    let HumanDuration(keep_alive) = serde::Deserialize::deserialize(d)?;
    if keep_alive < DurationAtLeast::<1000>::MIN {
        return Err(invalid(
            Code::OutOfRange,
            format!(
                "keep_alive must be at least 1 s, not {}",
                HumanDuration(keep_alive)
            ),
        ));
    }
    Ok(BoundedDuration(keep_alive))
}
fn default_keep_alive() -> DurationAtLeast<1000> {
    BoundedDuration(Duration::from_secs(30))
}
fn default_keep_alive_text() -> &'static str {
    "30s"
}
fn default_clean_session() -> bool {
    true
}
fn default_timeout() -> PositiveDuration {
    BoundedDuration(Duration::from_secs(5))
}
fn default_timeout_text() -> &'static str {
    "5s"
}

/// A broker host: not empty, no scheme, no port.
#[derive(Debug, Clone, PartialEq, Eq, schemars::JsonSchema)]
#[schemars(transparent)]
pub struct BrokerHost(
    #[schemars(length(min = 1), regex(pattern = r"^[^\s:/]+$|^\[?[0-9A-Fa-f:.]+\]?$"))] pub String,
);

impl<'de> serde::Deserialize<'de> for BrokerHost {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let host = text.trim();
        if host.is_empty() {
            return Err(serde::de::Error::custom("the broker host is empty"));
        }
        if host.contains("://") || host.contains('/') || host.contains(char::is_whitespace) {
            return Err(serde::de::Error::custom(format!(
                "invalid broker host `{text}`: write the host name or address only (e.g. \"mqtt.example.org\"), the port in `port`"
            )));
        }
        if host.matches(':').count() == 1 {
            return Err(serde::de::Error::custom(format!(
                "invalid broker host `{text}`: give the port in `port`, not in `host`"
            )));
        }
        Ok(BrokerHost(host.trim_matches(['[', ']']).to_owned()))
    }
}

/// A topic (or client id) with an optional `{deployment}` placeholder, checked while the
/// pipeline file is read: no other placeholder and no MQTT wildcard.
#[derive(Debug, Clone, PartialEq, Eq, schemars::JsonSchema)]
#[schemars(transparent)]
pub struct TopicTemplate(#[schemars(length(min = 1), regex(pattern = r"^[^+#]+$"))] pub String);

impl<'de> serde::Deserialize<'de> for TopicTemplate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.is_empty() {
            return Err(serde::de::Error::custom("it is empty"));
        }
        if text.contains(['+', '#']) {
            return Err(serde::de::Error::custom(format!(
                "`{text}` contains an MQTT wildcard (`+` or `#`); a message is published to one topic"
            )));
        }
        let rest = text.replace("{deployment}", "");
        if rest.contains(['{', '}']) {
            return Err(serde::de::Error::custom(format!(
                "`{text}`: the only placeholder is `{{deployment}}`"
            )));
        }
        Ok(TopicTemplate(text))
    }
}

impl TopicTemplate {
    /// The template with `{deployment}` replaced by [`topic_level`] of the name.
    fn render(&self, deployment: &str) -> String {
        self.0.replace("{deployment}", &topic_level(deployment))
    }
}

/// A name as one topic level: wildcards and `/` become `_`.
fn topic_level(name: &str) -> String {
    name.chars()
        .map(|c| if matches!(c, '/' | '+' | '#') { '_' } else { c })
        .collect()
}

impl MqttMessengerConfig {
    fn qos(&self) -> Result<QoS, String> {
        match self.qos {
            0 => Ok(QoS::AtMostOnce),
            1 => Ok(QoS::AtLeastOnce),
            2 => Ok(QoS::ExactlyOnce),
            other => Err(format!("qos must be 0, 1 or 2, not {other}")),
        }
    }

    fn options(&self, ctx: &BuildContext) -> Result<MqttOptions, String> {
        let deployment = &ctx.settings.deployment.name;
        let client_id = match (&self.client_id, &ctx.settings.device_id) {
            (Some(template), _) => template.render(deployment),
            (None, Some(device)) => format!("acoupi-{device}"),
            (None, None) => format!("acoupi-{}", topic_level(deployment)),
        };
        let port = self
            .port
            .unwrap_or(if self.tls.is_some() { 8883 } else { 1883 });
        let mut options = MqttOptions::new(client_id, self.host.0.clone(), port);
        options
            .set_keep_alive(self.keep_alive.0)
            .set_clean_session(self.clean_session)
            .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
        if self.username.is_none() && self.password_key().is_some() {
            return Err("a password needs a username".into());
        }
        // The messages name the variable or file, never the value.
        let password = match self.password_secret()? {
            Some((secret, key)) => Some(secret.read(ctx, key)?),
            None => None,
        };
        if let Some(user) = &self.username {
            options.set_credentials(user.clone(), password.unwrap_or_default());
        }
        if let Some(tls) = &self.tls {
            let ca_path = match &tls.ca {
                Some(path) => ctx.resolve(path),
                None => std::env::var_os("SSL_CERT_FILE")
                    .map_or_else(|| PathBuf::from(SYSTEM_CA_BUNDLE), PathBuf::from),
            };
            let ca = std::fs::read(&ca_path).map_err(|e| {
                format!("tls: cannot read the CA file `{}`: {e}", ca_path.display())
            })?;
            if !String::from_utf8_lossy(&ca).contains("-----BEGIN CERTIFICATE-----") {
                return Err(format!(
                    "tls: the CA file `{}` holds no PEM certificate",
                    ca_path.display()
                ));
            }
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
                ca,
                alpn: None,
                client_auth: None,
            }));
        }
        Ok(options)
    }
}

impl MqttMessengerConfig {
    /// The key holding the password when it would cross a network in clear (no `tls`, a
    /// host other than this machine).
    fn password_in_clear(&self) -> Option<&'static str> {
        if self.tls.is_some() || crate::shared::secret::is_loopback_host(&self.host.0) {
            return None;
        }
        self.password_key()
    }

    /// The key the password is given with, when it is: `password`, or one of its older
    /// spellings `password_env` and `password_file`.
    fn password_key(&self) -> Option<&'static str> {
        if self.password.is_some() {
            Some("password")
        } else if self.password_env.is_some() {
            Some("password_env")
        } else if self.password_file.is_some() {
            Some("password_file")
        } else {
            None
        }
    }

    /// The password's secret and the key it was given with.
    fn password_secret(&self) -> Result<Option<(Secret, &'static str)>, String> {
        match (&self.password, &self.password_env, &self.password_file) {
            (None, Some(_), Some(_)) => Err("give password_env or password_file, not both".into()),
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(
                "give `password` or its older spelling (password_env, password_file), not both"
                    .into(),
            ),
            (Some(secret), None, None) => Ok(Some((secret.clone(), "password"))),
            (None, Some(variable), None) => {
                Ok(Some((Secret::Env(variable.clone()), "password_env")))
            }
            (None, None, Some(file)) => Ok(Some((Secret::File(file.clone()), "password_file"))),
            (None, None, None) => Ok(None),
        }
    }
}

impl MqttMessengerConfig {
    /// The Home Assistant entities of this messenger's station.
    fn entities(&self, settings: &HomeAssistantSettings, ctx: &BuildContext) -> Entities {
        let name = &ctx.settings.deployment.name;
        Entities::new(&settings.discovery_prefix, &self.topic.render(name), name)
    }
}

/// What `acoupi ha remove` did for one messenger.
#[derive(Debug)]
pub struct Removal {
    /// The messenger's name in the pipeline.
    pub messenger: String,
    pub entities: Entities,
    /// The number of retained topics emptied.
    pub outcome: Result<usize, RemoveError>,
}

/// `acoupi ha remove`: empties the retained discovery configs, states and availability of
/// every `messenger.mqtt` of the pipeline that has `home_assistant` (Home Assistant then
/// deletes the station's entities). One [`Removal`] per such messenger.
pub fn remove_home_assistant(pipeline: &acoupi_engine::config::Pipeline) -> Vec<Removal> {
    let mut removals = Vec::new();
    for component in &pipeline.components {
        let Some(config) = component
            .settings
            .as_any()
            .downcast_ref::<MqttMessengerConfig>()
        else {
            continue;
        };
        let Some(settings) = &config.home_assistant else {
            continue;
        };
        let ctx = BuildContext {
            settings: pipeline.settings.clone(),
            instance: component.name.clone(),
            store: None,
            telemetry: acoupi_engine::telemetry::Telemetry::new(),
        };
        let entities = config.entities(settings, &ctx);
        let outcome = config
            .options(&ctx)
            .map_err(RemoveError::Options)
            .and_then(|options| {
                home_assistant::remove(
                    options,
                    &entities,
                    config.timeout.0.max(Duration::from_secs(5)),
                )
            });
        removals.push(Removal {
            messenger: component.name.clone(),
            entities,
            outcome,
        });
    }
    removals
}

impl ComponentConfig for MqttMessengerConfig {
    const KIND: &'static str = "messenger.mqtt";

    /// A password sent in clear.
    fn check(&self) -> Vec<KeyProblem> {
        match self.password_in_clear() {
            Some(key) if !self.insecure => vec![
                KeyProblem::new(
                    &[key],
                    Code::CredentialsInClear,
                    format!(
                        "the password would be sent in clear: the broker `{}` is another machine, reached without `tls`",
                        self.host.0
                    ),
                )
                .with_help("add `tls = {}` (the broker's TLS port, 8883 by default), or set `insecure = true` on this messenger to send it anyway"),
            ],
            _ => Vec::new(),
        }
    }

    fn build(&self, ctx: &BuildContext) -> Result<Built, BuildError> {
        if self.insecure && self.password_in_clear().is_some() {
            tracing::warn!(
                messenger = %ctx.instance,
                "INSECURE: messenger `{}` sends its MQTT password in clear to {} (no tls, insecure = true): anyone on the network path can read it; use tls",
                ctx.instance,
                self.host.0
            );
        }
        let qos = self.qos()?;
        let options = self.options(ctx)?;
        let broker = format!(
            "{}:{}",
            options.broker_address().0,
            options.broker_address().1
        );
        let topic = self.topic.render(&ctx.settings.deployment.name);
        // Only a running station (it has a store) publishes its entities.
        let home_assistant = match (&self.home_assistant, &ctx.store) {
            (Some(settings), Some(store)) => Some(Publisher::start(
                options.clone(),
                self.entities(settings, ctx),
                StationState::new(ctx.settings.deployment.timezone, Some(store.clone())),
                &ctx.instance,
            )?),
            _ => None,
        };
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        eventloop
            .network_options
            .set_connection_timeout(self.timeout.0.as_secs().max(1));
        let (events_tx, events_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the MQTT connection thread: {e}"))?;
        std::thread::Builder::new()
            .name(format!("mqtt {}", ctx.instance))
            .spawn(move || runtime.block_on(drive(eventloop, events_tx, stop_rx)))
            .map_err(|e| format!("cannot start the MQTT connection thread: {e}"))?;
        Ok(Built::Messenger(Arc::new(MqttMessenger {
            client,
            link: Mutex::new(Link {
                events: events_rx,
                state: LinkState::Unknown,
                queued: 0,
                reported: 0,
            }),
            stop: Mutex::new(Some(stop_tx)),
            topic,
            home_assistant,
            use_message_type: self.use_message_type,
            qos,
            retain: self.retain,
            timeout: self.timeout.0,
            broker,
        })))
    }
}

/// What the connection thread tells `send`.
#[derive(Debug)]
enum LinkEvent {
    /// The broker accepted the connection.
    Connected,
    /// A publish was written to the connection with this packet id (0 for QoS 0).
    Published(u16),
    /// The broker acknowledged the publish with this packet id (PUBACK or PUBCOMP).
    Acked(u16),
    /// The connection failed or dropped; `refused` when the broker said no.
    Down { refused: bool, reason: String },
}

/// Drives the MQTT event loop until `stop` fires or the messenger is dropped: forwards
/// what `send` waits for and reconnects with backoff.
async fn drive(
    mut eventloop: EventLoop,
    events: Sender<LinkEvent>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut backoff = Backoff::new(MIN_BACKOFF, MAX_BACKOFF);
    loop {
        let polled = tokio::select! {
            _ = &mut stop => return,
            polled = eventloop.poll() => polled,
        };
        let event = match polled {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                backoff.reset();
                Some(LinkEvent::Connected)
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => Some(LinkEvent::Published(pkid)),
            Ok(Event::Incoming(Incoming::PubAck(ack))) => Some(LinkEvent::Acked(ack.pkid)),
            Ok(Event::Incoming(Incoming::PubComp(comp))) => Some(LinkEvent::Acked(comp.pkid)),
            Ok(_) => None,
            Err(error) => {
                // The store resends what was not acknowledged; rumqttc must not. rumqttc
                // has moved its queue into `pending`; a publish it was holding back (a
                // packet id still in use) and events of the dead connection go too.
                forget_queued(&mut eventloop);
                let refused = matches!(error, ConnectionError::ConnectionRefused(_));
                let reason = match &error {
                    ConnectionError::ConnectionRefused(code) => {
                        format!("the broker refused the connection: {}", refusal(*code))
                    }
                    other => error_chain(other),
                };
                let wait = backoff.fail();
                tracing::debug!(%reason, retry_in = ?wait, "MQTT connection down");
                if events.send(LinkEvent::Down { refused, reason }).is_err() {
                    return;
                }
                tokio::select! {
                    _ = &mut stop => return,
                    () = tokio::time::sleep(wait) => {}
                }
                // A send that saw the link up just before `Down` may have queued a publish
                // after rumqttc emptied its queue; it has been told ERROR, so that publish
                // goes too.
                forget_queued(&mut eventloop);
                None
            }
        };
        if let Some(event) = event
            && events.send(event).is_err()
        {
            return;
        }
    }
}

/// Drops every publish rumqttc still holds (its resend queue, the requests not yet taken,
/// a publish waiting for a packet id) and the events of the connection that ended, so
/// that nothing reported as not sent is sent later behind the message store's back.
fn forget_queued(eventloop: &mut EventLoop) {
    eventloop.clean();
    eventloop.pending.clear();
    eventloop.state.collision = None;
    eventloop.state.events.clear();
}

/// The broker's reason for refusing a connection, in words.
fn refusal(code: ConnectReturnCode) -> &'static str {
    match code {
        ConnectReturnCode::Success => "no reason given",
        ConnectReturnCode::RefusedProtocolVersion => "unsupported protocol version",
        ConnectReturnCode::BadClientId => "client id rejected",
        ConnectReturnCode::ServiceUnavailable => "service unavailable",
        ConnectReturnCode::BadUserNamePassword => "bad user name or password",
        ConnectReturnCode::NotAuthorized => "not authorised",
    }
}

/// The connection as `send` last saw it.
#[derive(Debug, Clone)]
enum LinkState {
    /// No news yet (just started).
    Unknown,
    Connected,
    Down {
        refused: bool,
        reason: String,
    },
}

struct Link {
    events: Receiver<LinkEvent>,
    state: LinkState,
    /// Publishes handed to rumqttc so far.
    queued: u64,
    /// Of those, how many rumqttc reported written (`Published`) or dropped (on `Down`):
    /// the `n`-th report is the `n`-th publish queued.
    reported: u64,
}

impl Link {
    /// Takes in the events that arrived since the last send.
    fn catch_up(&mut self) {
        while let Ok(event) = self.events.try_recv() {
            self.apply(&event);
        }
    }

    fn apply(&mut self, event: &LinkEvent) {
        match event {
            LinkEvent::Connected => self.state = LinkState::Connected,
            LinkEvent::Down { refused, reason } => {
                self.state = LinkState::Down {
                    refused: *refused,
                    reason: reason.clone(),
                };
                // rumqttc dropped everything it held (see `forget_queued`).
                self.reported = self.queued;
            }
            LinkEvent::Published(_) => self.reported = (self.reported + 1).min(self.queued),
            LinkEvent::Acked(_) => {}
        }
    }

    /// The next event before `deadline`, or `None` when the deadline passed.
    fn next(&mut self, deadline: Instant) -> Option<LinkEvent> {
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.events.recv_timeout(wait) {
            Ok(event) => {
                self.apply(&event);
                Some(event)
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }
}

pub struct MqttMessenger {
    client: AsyncClient,
    /// One send at a time: the events of one publish are read by its own send.
    link: Mutex<Link>,
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    topic: String,
    /// The Home Assistant entities' connection, when `home_assistant` is set.
    home_assistant: Option<Publisher>,
    use_message_type: bool,
    qos: QoS,
    retain: bool,
    timeout: Duration,
    /// `host:port`, for the responses' reasons.
    broker: String,
}

impl Drop for MqttMessenger {
    fn drop(&mut self) {
        let _ = self.client.try_disconnect();
        if let Some(stop) = self.stop.lock().ok().and_then(|mut stop| stop.take()) {
            let _ = stop.send(());
        }
    }
}

impl Messenger for MqttMessenger {
    fn send(&self, message: &Message) -> Result<Response, SendError> {
        let response = self.publish(message)?;
        // The message is with the broker: now (never instead) the states it changes.
        if response.status == ResponseStatus::Success
            && let Some(home_assistant) = &self.home_assistant
        {
            home_assistant.delivered(message);
        }
        Ok(response)
    }
}

impl MqttMessenger {
    /// Publishes one message and waits for its outcome.
    fn publish(&self, message: &Message) -> Result<Response, SendError> {
        let mut link = self
            .link
            .lock()
            .map_err(|_| SendError("the MQTT connection state is poisoned".into()))?;
        let answer = |status: ResponseStatus, reason: String| {
            Ok(Response::new(status, message.clone()).with_content(reason))
        };
        let deadline = Instant::now() + self.timeout;
        link.catch_up();
        // Just started: wait (up to the timeout) for the first news of the connection.
        while matches!(link.state, LinkState::Unknown) {
            if link.next(deadline).is_none() {
                return answer(
                    ResponseStatus::Timeout,
                    format!(
                        "no connection to the MQTT broker {} within {:?}",
                        self.broker, self.timeout
                    ),
                );
            }
        }
        if let LinkState::Down { refused, reason } = &link.state {
            let status = if *refused {
                ResponseStatus::Failed
            } else {
                ResponseStatus::Error
            };
            return answer(
                status,
                format!("not connected to the MQTT broker {}: {reason}", self.broker),
            );
        }
        let topic = match (&message.message_type, self.use_message_type) {
            (_, false) => self.topic.clone(),
            (Some(kind), true) => format!("{}/{}", self.topic, kind.as_str()),
            (None, true) => format!("{}/message", self.topic),
        };
        if let Err(error) = self.client.try_publish(
            topic.as_str(),
            self.qos,
            self.retain,
            message.content.as_bytes().to_vec(),
        ) {
            return answer(
                ResponseStatus::Error,
                format!("cannot queue the publish to {}: {error}", self.broker),
            );
        }
        link.queued += 1;
        // This publish is the `mine`-th queued: the `mine`-th `Published` report is its own.
        let mine = link.queued;
        // The publish's packet id, once it is on the wire.
        let mut pkid: Option<u16> = None;
        loop {
            let Some(event) = link.next(deadline) else {
                let what = if pkid.is_some() {
                    "no acknowledgement"
                } else {
                    "the publish was not sent"
                };
                return answer(
                    ResponseStatus::Timeout,
                    format!(
                        "{what} from the MQTT broker {} within {:?}",
                        self.broker, self.timeout
                    ),
                );
            };
            match event {
                LinkEvent::Published(id) if pkid.is_none() && link.reported == mine => {
                    if self.qos == QoS::AtMostOnce {
                        return answer(
                            ResponseStatus::Success,
                            format!("published to `{topic}` (QoS 0: not acknowledged)"),
                        );
                    }
                    pkid = Some(id);
                }
                LinkEvent::Acked(id) if pkid == Some(id) => {
                    return answer(
                        ResponseStatus::Success,
                        format!(
                            "acknowledged by {} (QoS {}, packet {id})",
                            self.broker, self.qos as u8
                        ),
                    );
                }
                LinkEvent::Down { refused, reason } => {
                    let status = if refused {
                        ResponseStatus::Failed
                    } else {
                        ResponseStatus::Error
                    };
                    return answer(
                        status,
                        format!(
                            "the connection to the MQTT broker {} dropped: {reason}",
                            self.broker
                        ),
                    );
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
