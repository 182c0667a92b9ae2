//! `acoupi service install`: a systemd unit that runs a station at boot, restarts it on
//! failure, reloads its pipeline on `systemctl reload` (SIGHUP), runs it as a dedicated
//! user with the hardening options that still let it reach the sound card, and can write
//! only the station's own folders.
//!
//! Everything that goes into the unit comes from the pipeline file or the command line,
//! so it is checked and escaped as systemd.syntax(7) asks: a path, a user or a name
//! holding a control character (a newline would start a new directive) is refused; `%`
//! becomes `%%` wherever systemd expands specifiers; `$` becomes `$$` on command lines;
//! paths with spaces, quotes or backslashes are quoted where systemd unquotes them.

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
    if let Err(problem) = check_user(&args.user) {
        eprintln!("error: --user `{}`: {problem}", args.user.escape_debug());
        return ExitCode::from(super::USAGE_OR_IO);
    }
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
    let unit = match render_unit(&exe, &pipeline_path, &pipeline.settings, &args.user, &name) {
        Ok(unit) => unit,
        Err(problem) => {
            eprintln!(
                "error: cannot write a unit for `{}`: {problem}",
                pipeline_path.display()
            );
            return ExitCode::from(super::INVALID);
        }
    };
    if args.print {
        print!("{unit}");
        return ExitCode::SUCCESS;
    }
    let output = args
        .output
        .unwrap_or_else(|| Path::new("/etc/systemd/system").join(format!("{name}.service")));
    if output.exists() && !args.force {
        eprintln!(
            "error: `{}` exists; pass --force to replace it",
            output.display()
        );
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
        eprintln!(
            "error: cannot write `{}`: {error} (run with sudo, or --output/--print)",
            output.display()
        );
        return ExitCode::from(super::USAGE_OR_IO);
    }
    let user = &args.user;
    let folders: Vec<String> = folders.iter().map(|f| shell_quoted(f)).collect();
    println!("wrote {}", output.display());
    println!("next:");
    println!(
        "  sudo useradd --system --no-create-home --groups audio {user}   \
         # once, if the user does not exist"
    );
    println!("  sudo chown -R {user}: {}", folders.join(" "));
    println!(
        "  sudo install -m 600 /dev/null /etc/acoupi/{name}.env   \
         # optional: secrets as VAR=value lines (MQTT_PASSWORD=...)"
    );
    println!("  sudo systemctl daemon-reload && sudo systemctl enable --now {name}");
    println!("  journalctl -u {name} -f          # its logs");
    println!(
        "  sudo systemctl reload {name}     # re-read the pipeline file (applied only when valid)"
    );
    ExitCode::SUCCESS
}

/// A system user name as Debian's `adduser` accepts it by default: a lower-case letter
/// or `_`, then up to 31 lower-case letters, digits, `_` or `-`. Anything else (spaces,
/// newlines, `%`, an all-digit name systemd would read as a UID) is refused.
fn check_user(user: &str) -> Result<(), String> {
    let mut chars = user.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if first_ok && rest_ok && user.len() <= 32 {
        Ok(())
    } else {
        Err(
            "a user name is 1 to 32 characters: a lower-case letter or `_`, then lower-case \
             letters, digits, `_` or `-`"
                .into(),
        )
    }
}

/// `acoupi-<deployment>`, keeping letters, digits and `-` (others become `-`).
fn unit_name(deployment: &str) -> String {
    let slug: String = deployment
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let slug = slug
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    if slug.is_empty() {
        "acoupi".into()
    } else {
        format!("acoupi-{slug}")
    }
}

/// The folders the station writes: the store's, the temp folder and the recordings tree.
fn writable_folders(settings: &Settings) -> Vec<PathBuf> {
    let mut folders = vec![
        settings
            .store_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        settings.temp_dir.clone(),
        settings.recordings_dir.clone(),
    ];
    folders.sort();
    folders.dedup();
    folders
}

/// A path as unit-file text: UTF-8, absolute, without control characters (a newline
/// would end the directive and start another), with `%` escaped as `%%` (every setting
/// the unit uses for paths expands specifiers).
fn unit_path(what: &str, path: &Path) -> Result<String, String> {
    let text = path
        .to_str()
        .ok_or_else(|| format!("the {what} `{}` is not valid UTF-8", path.display()))?;
    if !path.is_absolute() {
        return Err(format!("the {what} `{text}` is not an absolute path"));
    }
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(format!(
            "the {what} `{}` holds the control character {c:?}; rename it",
            text.escape_debug()
        ));
    }
    Ok(text.replace('%', "%%"))
}

/// Quotes unit-file text for a setting that splits on spaces and unquotes words
/// (command lines, `ReadWritePaths=`): C-style escapes for `\` and `"`.
fn quoted(text: &str) -> String {
    if text.contains([' ', '"', '\\', '\'']) {
        format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        text.to_owned()
    }
}

/// A word of an `Exec*=` command line: quoted, and `$` escaped as `$$` (systemd
/// substitutes environment variables there).
fn command_word(text: &str) -> String {
    quoted(&text.replace('$', "$$"))
}

/// A path for the shell commands printed after installing.
fn shell_quoted(path: &Path) -> String {
    let text = path.display().to_string();
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// The unit. Hardening options that would cut the station off its sound card
/// (`PrivateDevices`, `PrivateUsers`, which would drop the `audio` group) are left out
/// on purpose; devices are closed except ALSA's (`DevicePolicy=closed` still allows
/// `/dev/null`, `/dev/urandom` and the like). `/proc` keeps its system files
/// (`ProcSubset=` is not set): the heartbeat's metrics read memory, load and CPU there.
/// Filtered system calls fail with `EPERM` instead of killing the station.
/// `MemoryMax=75%` is a second line of defence behind the decoders' own bounds.
///
/// `PrivateTmp` is left out when one of the station's folders is under `/tmp` or
/// `/var/tmp`: the service would write into a private copy that systemd empties at each
/// restart, losing the recordings waiting there (crash recovery looks for them).
fn render_unit(
    exe: &Path,
    pipeline: &Path,
    settings: &Settings,
    user: &str,
    name: &str,
) -> Result<String, String> {
    check_user(user)?;
    let folders = writable_folders(settings);
    let private_tmp = match folders
        .iter()
        .find(|f| f.starts_with("/tmp") || f.starts_with("/var/tmp"))
    {
        Some(folder) => format!(
            "# No PrivateTmp: `{}` is under /tmp, and a private /tmp is emptied at each \
                 restart.",
            unit_path("folder", folder)?
        ),
        None => "PrivateTmp=yes".to_string(),
    };
    let writable = folders
        .iter()
        .map(|p| unit_path("folder", p).map(|t| quoted(&t)))
        .collect::<Result<Vec<_>, _>>()?;
    let pipeline_text = unit_path("pipeline file", pipeline)?;
    let deployment: String = settings
        .deployment
        .name
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .replace('%', "%%");
    Ok(format!(
        "# Written by `acoupi service install` for {pipeline_text}.\n\
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
         # Large buffers (model activations) go back to the system when freed instead of\n\
         # staying in glibc's heap: BatDetect2's station holds half the memory\n\
         # (`acoupi bench memory`). The .env file can override it.\n\
         Environment=MALLOC_MMAP_THRESHOLD_=131072\n\
         EnvironmentFile=-/etc/acoupi/{name}.env\n\
         UMask=0077\n\
         NoNewPrivileges=yes\n\
         CapabilityBoundingSet=\n\
         AmbientCapabilities=\n\
         ProtectSystem=strict\n\
         ReadWritePaths={writable}\n\
         ProtectHome=read-only\n\
         {private_tmp}\n\
         PrivateMounts=yes\n\
         DevicePolicy=closed\n\
         DeviceAllow=char-alsa rw\n\
         ProtectProc=invisible\n\
         ProtectKernelTunables=yes\n\
         ProtectKernelModules=yes\n\
         ProtectKernelLogs=yes\n\
         ProtectControlGroups=yes\n\
         ProtectClock=yes\n\
         ProtectHostname=yes\n\
         RestrictNamespaces=yes\n\
         RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK\n\
         RestrictSUIDSGID=yes\n\
         RestrictRealtime=yes\n\
         RemoveIPC=yes\n\
         LockPersonality=yes\n\
         MemoryDenyWriteExecute=yes\n\
         SystemCallArchitectures=native\n\
         SystemCallFilter=@system-service\n\
         SystemCallFilter=~@privileged @resources\n\
         SystemCallErrorNumber=EPERM\n\
         MemoryMax=75%\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        exe = command_word(&unit_path("acoupi binary", exe)?),
        pipeline_q = command_word(&pipeline_text),
        dir = unit_path("folder", pipeline.parent().unwrap_or(Path::new("/")))?,
        writable = writable.join(" "),
    ))
}
