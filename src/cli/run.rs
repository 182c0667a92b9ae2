//! `acoupi run`: validate, open the store, build the station, run it until stopped, print
//! a summary.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use acoupi_engine::registry::Registry;
use acoupi_engine::runtime::{RunOptions, Station, SystemClock};
use acoupi_engine::telemetry::{COMPONENT_FIELDS, ErrorSource, Telemetry};
use acoupi_store_duckdb::DuckDbStore;
use clap::Args;

use super::LogFormat;

/// The most memory DuckDB may use for a running station's store, in MiB (DuckDB's
/// default is 80 % of the RAM): a station writes a recording's rows at a time and
/// retention reads a few columns, and on a 512 MB Raspberry Pi Zero 2 W the cache must
/// not grow with the store. What does not fit spills to `<store>.tmp/`.
const STORE_MEMORY_LIMIT_MIB: u64 = 64;

#[derive(Args)]
pub struct RunArgs {
    /// The pipeline file.
    pipeline: PathBuf,
    /// Trigger each scheduled stage once, wait for everything downstream, then exit.
    #[arg(long, conflicts_with = "for_")]
    once: bool,
    /// Stop after this long, e.g. "30s", "2h".
    #[arg(long = "for", id = "for_", value_parser = parse_duration)]
    for_: Option<Duration>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    acoupi_engine::config::values::parse_duration(text)
}

/// Logging to stderr (human or JSON lines, filtered by `RUST_LOG`, default `info`), plus,
/// given the station's telemetry, its error tally that `metric.station` reports, which
/// sees every ERROR event.
pub fn init_logging(format: LogFormat, telemetry: Option<Telemetry>) {
    init_logging_with(format, "info", telemetry);
}

/// [`init_logging`] with another filter when `RUST_LOG` is not set.
pub fn init_logging_with(format: LogFormat, default_filter: &str, telemetry: Option<Telemetry>) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{Layer, fmt};

    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let output = match format {
        LogFormat::Human => fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(telemetry.map(ErrorTallyLayer))
        .with(output)
        .init();
}

/// Feeds the station's [`Telemetry`] with every ERROR event, by stage and component.
struct ErrorTallyLayer(Telemetry);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ErrorTallyLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() != tracing::Level::ERROR {
            return;
        }
        #[derive(Default)]
        struct Text(String, ErrorSource);
        impl tracing::field::Visit for Text {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                self.record_debug(field, &value);
                if field.name() == "stage" {
                    self.1.stage = Some(value.to_string());
                } else if COMPONENT_FIELDS.contains(&field.name()) {
                    self.1.component = Some(value.to_string());
                }
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                let part = if field.name() == "message" {
                    format!("{value:?}")
                } else {
                    format!("{}={value:?}", field.name())
                };
                if field.name() == "stage" {
                    self.1.stage = Some(format!("{value:?}"));
                } else if COMPONENT_FIELDS.contains(&field.name()) {
                    self.1.component = Some(format!("{value:?}"));
                }
                if !self.0.is_empty() {
                    self.0.push(' ');
                }
                self.0.push_str(&part);
            }
        }
        let mut text = Text::default();
        event.record(&mut text);
        self.0.record_error(text.0, text.1);
    }
}

pub fn run(registry: &Registry, args: RunArgs, log_format: LogFormat) -> ExitCode {
    let mut pipeline = match super::load_or_report(registry, &args.pipeline) {
        Ok(pipeline) => pipeline,
        Err(code) => return code,
    };
    // One telemetry for every station this run builds: a reload keeps the counts.
    let telemetry = Telemetry::new();
    init_logging(log_format, Some(telemetry.clone()));
    let store = match DuckDbStore::open(&pipeline.settings.store_path) {
        Ok(store) => Arc::new(store),
        Err(error) => {
            tracing::error!(%error, "cannot open the store");
            return ExitCode::from(super::INVALID);
        }
    };
    if let Err(error) = store.limit_memory(STORE_MEMORY_LIMIT_MIB) {
        tracing::warn!(%error, "the store keeps DuckDB's default memory limit");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::from(super::USAGE_OR_IO);
        }
    };
    // The local API (`acoupi query`, `status`, `export` while the station runs); it seals
    // the store's DuckDB instance first (external access off, see acoupi_web::local).
    let mut local = match acoupi_web::local::LocalApi::start(runtime.handle(), &store) {
        Ok(local) => Some(local),
        Err(error) => {
            tracing::warn!(%error, "no local API: `acoupi query` and `export` will copy the store");
            None
        }
    };
    let options = RunOptions {
        once: args.once,
        duration: args.for_,
    };
    // The pipeline that ran last without a build error, to fall back on.
    let mut last_good: Option<acoupi_engine::config::Pipeline> = None;
    // `[web]`: the dashboard, restarted with each reloaded pipeline (see serve.rs).
    let mut dashboard: Option<super::serve::Dashboard> = None;
    loop {
        let mut station =
            match Station::build_with(&pipeline, store.clone(), store.clone(), telemetry.clone()) {
                Ok(station) => station,
                Err(error) => {
                    tracing::error!("{error}");
                    match last_good.take() {
                        Some(previous) => {
                            tracing::error!(
                                "the reloaded pipeline cannot start; going back to the one that ran"
                            );
                            pipeline = previous;
                            continue;
                        }
                        None => return ExitCode::from(super::INVALID),
                    }
                }
            };
        tracing::info!(pipeline = %args.pipeline.display(), store = %pipeline.settings.store_path.display(), "{}", pipeline.summary());
        if let Some(running) = dashboard.take() {
            running.stop(runtime.handle());
        }
        if let Some(web) = &pipeline.settings.web {
            match super::serve::Dashboard::for_station(
                runtime.handle(),
                web,
                &pipeline.settings,
                &store,
                &telemetry,
            ) {
                Ok(started) => dashboard = Some(started),
                // At start a dashboard that cannot start stops the station; after a
                // reload the station runs on without it.
                Err(message) if last_good.is_none() => {
                    tracing::error!("{message}");
                    return ExitCode::from(super::USAGE_OR_IO);
                }
                Err(message) => {
                    tracing::error!("{message}; the station runs on without its dashboard")
                }
            }
        }
        station.recover();
        let next = std::sync::Mutex::new(None);
        let summary = runtime.block_on(station.run(
            options,
            Arc::new(SystemClock),
            stop_or_reload(registry, &args.pipeline, &pipeline, &next),
        ));
        match next.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(reloaded) => {
                println!("{} (before reload): {summary}", args.pipeline.display());
                tracing::info!("reloading the pipeline file");
                last_good = Some(std::mem::replace(&mut pipeline, reloaded));
            }
            None => {
                if let Some(running) = dashboard.take() {
                    running.stop(runtime.handle());
                }
                if let Some(local) = local.take() {
                    local.stop(&runtime);
                }
                // Closing the last handle checkpoints the database file.
                drop(store);
                tracing::info!("stopped");
                println!("{}: {summary}", args.pipeline.display());
                return ExitCode::SUCCESS;
            }
        }
    }
}

/// Completes on Ctrl-C or SIGTERM (leaving `next` empty), or on a SIGHUP after which the
/// pipeline file is valid and keeps the same store (putting the new pipeline in `next`).
/// A SIGHUP with an invalid file logs every problem and keeps the running pipeline.
async fn stop_or_reload(
    registry: &Registry,
    path: &std::path::Path,
    running: &acoupi_engine::config::Pipeline,
    next: &std::sync::Mutex<Option<acoupi_engine::config::Pipeline>>,
) {
    #[cfg(unix)]
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGHUP; reloading is off");
            None
        }
    };
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        #[cfg(unix)]
        let hup = async {
            match hangup.as_mut() {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hup = std::future::pending::<Option<()>>();
        tokio::select! {
            _ = &mut stop => return,
            _ = hup => {
                tracing::info!(pipeline = %path.display(), "SIGHUP received: checking the pipeline file");
                match acoupi_engine::config::load(path, registry) {
                    Ok(reloaded) if reloaded.settings.store_path != running.settings.store_path => tracing::error!(
                        old = %running.settings.store_path.display(),
                        new = %reloaded.settings.store_path.display(),
                        "reload refused: the store file changed; restart acoupi to use another store. Still running the previous pipeline"
                    ),
                    Ok(reloaded) => {
                        *next.lock().unwrap_or_else(|e| e.into_inner()) = Some(reloaded);
                        return;
                    }
                    Err(acoupi_engine::config::LoadError::Invalid(errors)) => {
                        let problems: Vec<String> = errors.reports().into_iter().map(|r| format!("{:?}", miette::Report::new(r))).collect();
                        tracing::error!(problems = errors.problems.len(), "reload refused: the pipeline file is invalid; still running the previous pipeline\n{}", problems.join("\n"));
                    }
                    Err(error) => tracing::error!(%error, "reload refused: still running the previous pipeline"),
                }
            }
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub(super) async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C received"),
        _ = terminate => tracing::info!("SIGTERM received"),
    }
}
