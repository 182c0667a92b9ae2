//! The dashboard's two ways of being served: [`Dashboard`], started by `acoupi run` when the
//! pipeline has `[web]` (on the station's runtime, with its store and telemetry), and
//! `acoupi serve FILE` (a store no station holds: a pipeline's, a `.duckdb` file, or the
//! one store file in a reprocessing output folder).
//!
//! Choices where the issue is silent:
//! - a SIGHUP reload of `acoupi run` restarts the dashboard with the new pipeline's
//!   settings (the same address or a new one; open pages reload their next request);
//!   when the new address cannot be bound the station runs on without a dashboard and
//!   logs why;
//! - rendered spectrograms are cached in `<store file>.cache/` next to the store;
//! - `acoupi serve PIPELINE` takes the pipeline's `[web]` (address, token, `public`,
//!   `species_key`) unless a flag gives another.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use acoupi_engine::config::{Settings, WebSettings};
use acoupi_engine::registry::Registry;
use acoupi_engine::secret::Secret;
use acoupi_engine::store::StoreError;
use acoupi_engine::telemetry::Telemetry;
use acoupi_store_duckdb::DuckDbStore;
use acoupi_web::{AppState, Served, StateOptions};
use clap::Args;

/// How long a stopping dashboard waits for requests in flight before it closes them.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A dashboard running on a tokio runtime; [`Dashboard::stop`] ends it.
pub struct Dashboard {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Where it listens (the bound address: a port 0 is resolved).
    pub address: SocketAddr,
}

/// Where rendered spectrograms of the store at `store_path` are cached.
fn cache_dir(store_path: &Path) -> PathBuf {
    let mut name = store_path.as_os_str().to_owned();
    name.push(".cache");
    PathBuf::from(name)
}

impl Dashboard {
    /// Binds `listen` and serves `store` there on `runtime`; errors name the address.
    pub fn start(
        runtime: &tokio::runtime::Handle,
        listen: SocketAddr,
        options: StateOptions,
    ) -> Result<Dashboard, String> {
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(listen))
            .map_err(|e| format!("the dashboard cannot listen on {listen}: {e}"))?;
        let address = listener
            .local_addr()
            .map_err(|e| format!("the dashboard cannot listen on {listen}: {e}"))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = AppState::new(options);
        let task = runtime.spawn(acoupi_web::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        tracing::info!(url = %format!("http://{address}/"), "dashboard");
        Ok(Dashboard {
            stop,
            task,
            address,
        })
    }

    /// The dashboard of a station: `[web]` of `settings`, the station's store and
    /// telemetry. Errors: an unreadable token, an address that cannot be bound.
    pub fn for_station(
        runtime: &tokio::runtime::Handle,
        web: &WebSettings,
        settings: &Settings,
        store: &DuckDbStore,
        telemetry: &Telemetry,
    ) -> Result<Dashboard, String> {
        let token = web.read_token()?;
        Dashboard::start(
            runtime,
            web.listen,
            StateOptions {
                store: store.clone(),
                served: Served::Station,
                telemetry: Some(telemetry.clone()),
                settings: Some(Arc::new(settings.clone())),
                species_key: web.species_key.clone(),
                cache_dir: cache_dir(&settings.store_path),
                token,
                public: web.public,
            },
        )
    }

    /// Stops accepting, lets requests in flight finish (at most [`STOP_GRACE`]), then
    /// closes what is still open (event streams).
    pub fn stop(self, runtime: &tokio::runtime::Handle) {
        let _ = self.stop.send(());
        let mut task = self.task;
        runtime.block_on(async {
            match tokio::time::timeout(STOP_GRACE, &mut task).await {
                Ok(Ok(Err(error))) => tracing::warn!(%error, "the dashboard stopped with an error"),
                Ok(_) => {}
                Err(_) => {
                    task.abort();
                    let _ = (&mut task).await;
                }
            }
        });
    }
}

#[derive(Args)]
pub struct ServeArgs {
    /// A pipeline file (its store), a `.duckdb` store file, or a folder holding one store
    /// file (e.g. a reprocessing output folder after `acoupi merge`).
    pub file: PathBuf,
    /// Where to listen. Default: the pipeline's `[web] listen`, else 127.0.0.1:8080. Any
    /// address but this machine's needs --token-env or --token-file.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// The environment variable holding the token every request must carry
    /// (`Authorization: Bearer <token>`).
    #[arg(long, conflicts_with = "token_file")]
    pub token_env: Option<String>,
    /// A file (mode 600) holding the token.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// With a token: reads need none, only changes (reviews) do.
    #[arg(long)]
    pub public: bool,
    /// Open the store for writing so reviews can be stored (no station may hold it).
    /// Without it the store is opened read-only and reviews are refused.
    #[arg(long)]
    pub allow_reviews: bool,
    /// The tag key whose values are the species (default: the pipeline's `[web]
    /// species_key`, else `species` or the first tag key the store's models emit).
    #[arg(long)]
    pub species_key: Option<String>,
}

/// The store file `file` names, and the pipeline's settings when it is a pipeline.
fn store_of(registry: &Registry, file: &Path) -> Result<(PathBuf, Option<Settings>), ExitCode> {
    if file.is_dir() {
        let mut stores: Vec<PathBuf> = std::fs::read_dir(file)
            .map_err(|e| usage(format!("cannot read `{}`: {e}", file.display())))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "duckdb"))
            .collect();
        stores.sort();
        return match stores.as_slice() {
            [one] => Ok((one.clone(), None)),
            [] => Err(usage(format!(
                "`{}` holds no .duckdb store file",
                file.display()
            ))),
            many => Err(usage(format!(
                "`{}` holds {} store files; name one (or `acoupi merge` them first)",
                file.display(),
                many.len()
            ))),
        };
    }
    if file.extension().is_some_and(|x| x == "toml") {
        let pipeline = super::load_or_report(registry, file)?;
        return Ok((
            pipeline.settings.store_path.clone(),
            Some(pipeline.settings),
        ));
    }
    Ok((file.to_path_buf(), None))
}

fn usage(message: String) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(super::USAGE_OR_IO)
}

pub fn serve(registry: &Registry, args: ServeArgs, log_format: super::LogFormat) -> ExitCode {
    super::run::init_logging(log_format, None);
    let (store_path, settings) = match store_of(registry, &args.file) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let web = settings.as_ref().and_then(|s| s.web.clone());
    let listen = args
        .listen
        .or(web.as_ref().map(|w| w.listen))
        .unwrap_or(acoupi_engine::config::pipeline::DEFAULT_LISTEN);
    let flag_token = match (args.token_env, args.token_file) {
        (Some(env), _) => Some(Secret::Env(env)),
        (None, Some(file)) => Some(Secret::File(file)),
        (None, None) => None,
    };
    let (token, public) = match flag_token {
        Some(secret) => (
            secret.read_in(Path::new(""), "--token").map(Some),
            args.public,
        ),
        None => match &web {
            Some(web) => (web.read_token(), args.public || web.public),
            None => (Ok(None), args.public),
        },
    };
    let token = match token {
        Ok(token) => token,
        Err(message) => return usage(message),
    };
    if token.is_none() && !listen.ip().is_loopback() {
        return usage(format!(
            "--listen {listen} can be reached from other machines: give --token-env NAME or --token-file PATH"
        ));
    }
    let opened = if args.allow_reviews {
        DuckDbStore::open(&store_path)
    } else {
        DuckDbStore::open_read_only(&store_path)
    };
    let store = match opened {
        Ok(store) => store,
        Err(error @ StoreError::Locked { .. }) => {
            eprintln!("error: {error}");
            eprintln!(
                "hint: a running station serves its own dashboard with [web] in its pipeline (see docs/dashboard.md)"
            );
            return ExitCode::from(super::INVALID);
        }
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(super::INVALID);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return usage(format!("cannot start the async runtime: {error}")),
    };
    let options = StateOptions {
        store,
        served: Served::File {
            read_only: !args.allow_reviews,
        },
        telemetry: None,
        species_key: args
            .species_key
            .or(web.as_ref().and_then(|w| w.species_key.clone())),
        settings: settings.map(Arc::new),
        cache_dir: cache_dir(&store_path),
        token,
        public,
    };
    let dashboard = match Dashboard::start(runtime.handle(), listen, options) {
        Ok(dashboard) => dashboard,
        Err(message) => return usage(message),
    };
    println!(
        "serving {} at http://{}/",
        store_path.display(),
        dashboard.address
    );
    runtime.block_on(super::run::shutdown_signal());
    dashboard.stop(runtime.handle());
    ExitCode::SUCCESS
}
