//! `acoupi service install`: a systemd unit that runs a station at boot, restarts it on
//! failure, reloads its pipeline on `systemctl reload` (SIGHUP), runs it as a dedicated
//! user with the hardening options that still let it reach the sound card, and can write
//! only the station's own folders.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use acoupi_engine::config::Settings;
use acoupi_engine::registry::Registry;

#[derive(clap::Subcommand)]
pub enum ServiceCommand {
    /// Write a systemd unit for a pipeline and print how to enable it.
    Install(InstallArgs),
}

#[derive(clap::Args)]
pub struct InstallArgs {
    /// The pipeline file.
    pipeline: PathBuf,
    /// The system user the station runs as (it needs the `audio` group for a microphone).
    #[arg(long, default_value = "acoupi")]
    user: String,
    /// Where to write the unit (default: /etc/systemd/system/acoupi-<deployment>.service).
    #[arg(long, conflicts_with = "print")]
    output: Option<PathBuf>,
    /// Print the unit instead of writing it.
    #[arg(long)]
    print: bool,
    /// Replace an existing unit file.
    #[arg(long)]
    force: bool,
}

pub fn service(registry: &Registry, command: ServiceCommand) -> ExitCode {
    let ServiceCommand::Install(args) = command;
    let pipeline_path = match std::fs::canonicalize(&args.pipeline) {
        Ok(path) => path,
        Err(error) => {
            eprintln!("error: cannot find `{}`: {error}", args.pipeline.display());
            return ExitCode::from(super::USAGE_OR_IO);
        }
    };
    let pipeline = match super::load_or_report(registry, &pipeline_path) {
        Ok(pipeline) => pipeline,
        Err(code) => return code,
    };
    let exe = match std::env::current_exe().and_then(std::fs::canonicalize) {
        Ok(exe) => exe,
        Err(error) => {
            eprintln!("error: cannot find the acoupi binary's path: {error}");
            return ExitCode::from(super::USAGE_OR_IO);
        }
    };
    let name = unit_name(&pipeline.settings.deployment.name);
    let unit = render_unit(&exe, &pipeline_path, &pipeline.settings, &args.user, &name);
    if args.print {
        print!("{unit}");
        return ExitCode::SUCCESS;
    }
    let output = args.output.unwrap_or_else(|| Path::new("/etc/systemd/system").join(format!("{name}.service")));
    if output.exists() && !args.force {
        eprintln!("error: `{}` exists; pass --force to replace it", output.display());
        return ExitCode::from(super::USAGE_OR_IO);
    }
    let folders = writable_folders(&pipeline.settings);
    for folder in &folders {
        if let Err(error) = std::fs::create_dir_all(folder) {
            eprintln!("error: cannot create `{}`: {error}", folder.display());
            return ExitCode::from(super::USAGE_OR_IO);
        }
    }
    if let Err(error) = std::fs::write(&output, &unit) {
        eprintln!("error: cannot write `{}`: {error} (run with sudo, or --output/--print)", output.display());
        return ExitCode::from(super::USAGE_OR_IO);
    }
    let user = &args.user;
    let folders: Vec<String> = folders.iter().map(|f| f.display().to_string()).collect();
    println!("wrote {}", output.display());
    println!("next:");
    println!("  sudo useradd --system --no-create-home --groups audio {user}   # once, if the user does not exist");
    println!("  sudo chown -R {user}: {}", folders.join(" "));
    println!("  sudo install -m 600 /dev/null /etc/acoupi/{name}.env   # optional: secrets as VAR=value lines (MQTT_PASSWORD=...)");
    println!("  sudo systemctl daemon-reload && sudo systemctl enable --now {name}");
    println!("  journalctl -u {name} -f          # its logs");
    println!("  sudo systemctl reload {name}     # re-read the pipeline file (applied only when valid)");
    ExitCode::SUCCESS
}

/// `acoupi-<deployment>`, keeping letters, digits and `-` (others become `-`).
fn unit_name(deployment: &str) -> String {
    let slug: String = deployment.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let slug = slug.split('-').filter(|s| !s.is_empty()).collect::<Vec<_>>().join("-");
    if slug.is_empty() { "acoupi".into() } else { format!("acoupi-{slug}") }
}

/// The folders the station writes: the store's, the temp folder and the recordings tree.
fn writable_folders(settings: &Settings) -> Vec<PathBuf> {
    let mut folders = vec![settings.store_path.parent().map(Path::to_path_buf).unwrap_or_default(), settings.temp_dir.clone(), settings.recordings_dir.clone()];
    folders.sort();
    folders.dedup();
    folders
}

/// Quotes a path for a unit file's command line and path lists.
fn quoted(path: &Path) -> String {
    let text = path.display().to_string();
    if text.contains([' ', '"', '\\']) { format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\"")) } else { text }
}

/// The unit. Hardening options that would cut the station off its sound card
/// (`PrivateDevices`, `DevicePolicy=closed`) are left out on purpose.
///
/// `PrivateTmp` is left out when one of the station's folders is under `/tmp` or
/// `/var/tmp`: the service would write into a private copy that systemd empties at each
/// restart, losing the recordings waiting there (crash recovery looks for them).
fn render_unit(exe: &Path, pipeline: &Path, settings: &Settings, user: &str, name: &str) -> String {
    let folders = writable_folders(settings);
    let private_tmp = match folders.iter().find(|f| f.starts_with("/tmp") || f.starts_with("/var/tmp")) {
        Some(folder) => format!("# No PrivateTmp: `{}` is under /tmp, and a private /tmp is emptied at each restart.", folder.display()),
        None => "PrivateTmp=yes".to_string(),
    };
    let writable: Vec<String> = folders.iter().map(|p| quoted(p)).collect();
    format!(
        "# Written by `acoupi service install` for {pipeline}.\n\
         [Unit]\n\
         Description=acoupi station {deployment}\n\
         After=network-online.target sound.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={exe} run {pipeline_q}\n\
         ExecReload=/bin/kill -HUP $MAINPID\n\
         Restart=on-failure\n\
         RestartSec=10\n\
         User={user}\n\
         Group={user}\n\
         SupplementaryGroups=audio\n\
         WorkingDirectory={dir}\n\
         EnvironmentFile=-/etc/acoupi/{name}.env\n\
         NoNewPrivileges=yes\n\
         ProtectSystem=strict\n\
         ReadWritePaths={writable}\n\
         ProtectHome=read-only\n\
         {private_tmp}\n\
         ProtectKernelTunables=yes\n\
         ProtectKernelModules=yes\n\
         ProtectControlGroups=yes\n\
         RestrictSUIDSGID=yes\n\
         LockPersonality=yes\n\
         RestrictRealtime=yes\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        pipeline = pipeline.display(),
        deployment = settings.deployment.name.replace('\n', " "),
        exe = quoted(exe),
        pipeline_q = quoted(pipeline),
        dir = quoted(pipeline.parent().unwrap_or(Path::new("/"))),
        writable = writable.join(" "),
    )
}
