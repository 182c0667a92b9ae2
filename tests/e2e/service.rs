//! `acoupi service install`: the unit it writes, checked by systemd's own verifier.

use std::process::Command;

use crate::run::demo_in;

fn acoupi(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .args(args)
        .output()
        .unwrap()
}

/// The demo pipeline in `dir` with its recordings folder set to `recordings`.
fn demo_with_recordings(dir: &std::path::Path, recordings: &str) -> std::path::PathBuf {
    let path = demo_in(dir);
    let mut pipeline: toml::Table =
        toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    pipeline["paths"]["recordings"] = recordings.into();
    std::fs::write(&path, toml::to_string(&pipeline).unwrap()).unwrap();
    path
}

/// `systemd-analyze`, required where CI is set (Debian's systemd package ships it).
fn systemd_analyze() -> Option<Command> {
    match Command::new("systemd-analyze").arg("--version").output() {
        Ok(out) if out.status.success() => Some(Command::new("systemd-analyze")),
        _ => {
            crate::skip_unless_required("CI", "no systemd-analyze");
            None
        }
    }
}

/// `systemd-analyze verify` finds nothing to say about the unit file `file`.
fn assert_verified(file: &std::path::Path) {
    let Some(mut analyze) = systemd_analyze() else {
        return;
    };
    let verify = analyze.arg("verify").arg(file).output().unwrap();
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && !said.contains(&file.display().to_string()),
        "systemd-analyze verify: {said}"
    );
}

#[test]
fn a_newline_in_a_path_cannot_add_a_directive() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_with_recordings(dir.path(), "x\nExecStartPre=+/bin/touch /tmp/p");
    let written: toml::Table =
        toml::from_str(&std::fs::read_to_string(&pipeline).unwrap()).unwrap();
    assert!(
        written["paths"]["recordings"]
            .as_str()
            .unwrap()
            .contains('\n'),
        "the path holds a newline"
    );
    let printed = acoupi(&["service", "install", pipeline.to_str().unwrap(), "--print"]);
    let stdout = String::from_utf8_lossy(&printed.stdout);
    let stderr = String::from_utf8_lossy(&printed.stderr);
    assert_eq!(printed.status.code(), Some(1), "refused: {stdout}{stderr}");
    assert!(
        !stdout.lines().any(|l| l.starts_with("ExecStartPre")),
        "{stdout}"
    );
    assert!(
        stderr.contains("control character"),
        "the error says why: {stderr}"
    );
    let out = dir.path().join("acoupi-demo.service");
    let written = acoupi(&[
        "service",
        "install",
        pipeline.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(written.status.code(), Some(1));
    assert!(!out.exists(), "no unit is written");
}

#[test]
fn percent_and_dollar_in_paths_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_with_recordings(dir.path(), "rec %n $HOME");
    let printed = acoupi(&["service", "install", pipeline.to_str().unwrap(), "--print"]);
    assert!(
        printed.status.success(),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );
    let unit = String::from_utf8(printed.stdout).unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let rw = unit
        .lines()
        .find(|l| l.starts_with("ReadWritePaths="))
        .unwrap();
    assert!(
        rw.contains(&format!("\"{}/rec %%n $HOME\"", root.display())),
        "{rw}"
    );
    // A folder named with `$` on the command line: the pipeline's own folder.
    let odd = root.join("st$USER %i");
    std::fs::create_dir(&odd).unwrap();
    let pipeline = demo_in(&odd);
    let printed = acoupi(&["service", "install", pipeline.to_str().unwrap(), "--print"]);
    assert!(
        printed.status.success(),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );
    let unit = String::from_utf8(printed.stdout).unwrap();
    let exec = unit.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
    assert!(
        exec.ends_with(&format!(
            " run \"{}/st$$USER %%i/demo.toml\"",
            root.display()
        )),
        "{exec}"
    );
    let work = unit
        .lines()
        .find(|l| l.starts_with("WorkingDirectory="))
        .unwrap();
    assert_eq!(
        work,
        format!("WorkingDirectory={}/st$USER %%i", root.display())
    );
    let file = dir.path().join("acoupi-odd.service");
    std::fs::write(&file, &unit).unwrap();
    assert_verified(&file);
}

#[test]
fn the_user_must_be_a_user_name() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    for user in [
        "bird\nExecStartPre=/bin/true",
        "root;rm",
        "Birder",
        "1000",
        "",
        "a b",
        "%n",
        "a".repeat(33).as_str(),
    ] {
        let out = acoupi(&[
            "service",
            "install",
            pipeline.to_str().unwrap(),
            "--print",
            "--user",
            user,
        ]);
        assert_eq!(out.status.code(), Some(2), "--user {user:?} is refused");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("a user name is"),
            "{user:?}"
        );
        assert!(out.stdout.is_empty());
    }
    for user in ["acoupi", "_birder", "station-2"] {
        let out = acoupi(&[
            "service",
            "install",
            pipeline.to_str().unwrap(),
            "--print",
            "--user",
            user,
        ]);
        assert!(
            out.status.success(),
            "--user {user:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_unit_scores_ok_in_systemd_analyze_security() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let out = dir.path().join("acoupi-demo.service");
    let written = acoupi(&[
        "service",
        "install",
        pipeline.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(
        written.status.success(),
        "{}",
        String::from_utf8_lossy(&written.stderr)
    );
    let unit = std::fs::read_to_string(&out).unwrap();
    for line in [
        "UMask=0077",
        "CapabilityBoundingSet=",
        "ProtectKernelLogs=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "RestrictNamespaces=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        "SystemCallFilter=@system-service",
        "LockPersonality=yes",
        "DeviceAllow=char-alsa rw",
        "MemoryMax=75%",
    ] {
        assert!(unit.lines().any(|l| l == line), "no `{line}` in\n{unit}");
    }
    let Some(mut analyze) = systemd_analyze() else {
        return;
    };
    let report = analyze
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&report.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("→ Overall exposure level for acoupi-demo.service: "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no score in\n{text}{}",
                String::from_utf8_lossy(&report.stderr)
            )
        });
    println!("systemd-analyze security: {score}");
    assert!(score <= 4.0, "exposure {score} > 4.0:\n{text}");
}

#[test]
fn the_unit_restarts_reloads_and_can_write_only_the_stations_folders() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let printed = acoupi(&[
        "service",
        "install",
        pipeline.to_str().unwrap(),
        "--print",
        "--user",
        "birder",
    ]);
    assert!(
        printed.status.success(),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );
    let unit = String::from_utf8(printed.stdout).unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    for line in [
        "Restart=on-failure".to_string(),
        "ExecReload=/bin/kill -HUP $MAINPID".into(),
        "User=birder".into(),
        "SupplementaryGroups=audio".into(),
        "NoNewPrivileges=yes".into(),
        "ProtectSystem=strict".into(),
        format!("ReadWritePaths={0} {0}/recordings {0}/tmp", root.display()),
        format!(
            "ExecStart={} run {}/demo.toml",
            std::fs::canonicalize(env!("CARGO_BIN_EXE_acoupi"))
                .unwrap()
                .display(),
            root.display()
        ),
    ] {
        assert!(unit.lines().any(|l| l == line), "no `{line}` in\n{unit}");
    }
    assert!(
        !unit.contains("PrivateDevices"),
        "the sound card must stay reachable"
    );
    // This station lives under /tmp: a private /tmp would lose its waiting recordings.
    assert!(
        root.starts_with("/tmp"),
        "the test expects its temporary folder under /tmp: {}",
        root.display()
    );
    assert!(
        !unit.contains("PrivateTmp=yes") && unit.contains("# No PrivateTmp:"),
        "{unit}"
    );
    // A station elsewhere (the build folder, else the home folder: a clone may live under
    // /tmp) gets a private /tmp.
    let outside_tmp = |p: &std::path::Path| {
        std::fs::canonicalize(p).is_ok_and(|p| !p.starts_with("/tmp") && !p.starts_with("/var/tmp"))
    };
    let candidates = [
        Some(std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))),
        std::env::var_os("HOME").map(std::path::PathBuf::from),
    ];
    match candidates.into_iter().flatten().find(|p| outside_tmp(p)) {
        Some(base) => {
            let elsewhere = tempfile::tempdir_in(base).unwrap();
            let other = acoupi(&[
                "service",
                "install",
                demo_in(elsewhere.path()).to_str().unwrap(),
                "--print",
            ]);
            assert!(
                String::from_utf8_lossy(&other.stdout)
                    .lines()
                    .any(|l| l == "PrivateTmp=yes"),
                "a station outside /tmp gets a private /tmp"
            );
        }
        None => println!(
            "skipped the PrivateTmp=yes check: the build and home folders are both under /tmp"
        ),
    }

    let out = dir.path().join("acoupi-demo.service");
    let written = acoupi(&[
        "service",
        "install",
        pipeline.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--user",
        "birder",
    ]);
    assert!(
        written.status.success(),
        "{}",
        String::from_utf8_lossy(&written.stderr)
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), unit);
    assert!(
        String::from_utf8_lossy(&written.stdout).contains("systemctl enable --now acoupi-demo")
    );
    assert!(
        dir.path().join("recordings").is_dir() && dir.path().join("tmp").is_dir(),
        "its folders exist for ReadWritePaths"
    );
    let again = acoupi(&[
        "service",
        "install",
        pipeline.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "an existing unit is not replaced without --force"
    );

    assert_verified(&out);
}
