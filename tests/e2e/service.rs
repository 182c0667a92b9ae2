//! `acoupi service install`: the unit it writes, checked by systemd's own verifier.

use std::process::Command;

use crate::run::demo_in;

fn acoupi(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_acoupi")).args(args).output().unwrap()
}

#[test]
fn the_unit_restarts_reloads_and_can_write_only_the_stations_folders() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let printed = acoupi(&["service", "install", pipeline.to_str().unwrap(), "--print", "--user", "birder"]);
    assert!(printed.status.success(), "{}", String::from_utf8_lossy(&printed.stderr));
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
        format!("ExecStart={} run {}/demo.toml", std::fs::canonicalize(env!("CARGO_BIN_EXE_acoupi")).unwrap().display(), root.display()),
    ] {
        assert!(unit.lines().any(|l| l == line), "no `{line}` in\n{unit}");
    }
    assert!(!unit.contains("PrivateDevices"), "the sound card must stay reachable");
    // This station lives under /tmp: a private /tmp would lose its waiting recordings.
    assert!(root.starts_with("/tmp"), "the test expects its temporary folder under /tmp: {}", root.display());
    assert!(!unit.contains("PrivateTmp=yes") && unit.contains("# No PrivateTmp:"), "{unit}");
    // A station elsewhere (the build folder, else the home folder: a clone may live under
    // /tmp) gets a private /tmp.
    let outside_tmp = |p: &std::path::Path| std::fs::canonicalize(p).is_ok_and(|p| !p.starts_with("/tmp") && !p.starts_with("/var/tmp"));
    let candidates = [Some(std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))), std::env::var_os("HOME").map(std::path::PathBuf::from)];
    match candidates.into_iter().flatten().find(|p| outside_tmp(p)) {
        Some(base) => {
            let elsewhere = tempfile::tempdir_in(base).unwrap();
            let other = acoupi(&["service", "install", demo_in(elsewhere.path()).to_str().unwrap(), "--print"]);
            assert!(String::from_utf8_lossy(&other.stdout).lines().any(|l| l == "PrivateTmp=yes"), "a station outside /tmp gets a private /tmp");
        }
        None => println!("skipped the PrivateTmp=yes check: the build and home folders are both under /tmp"),
    }

    let out = dir.path().join("acoupi-demo.service");
    let written = acoupi(&["service", "install", pipeline.to_str().unwrap(), "--output", out.to_str().unwrap(), "--user", "birder"]);
    assert!(written.status.success(), "{}", String::from_utf8_lossy(&written.stderr));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), unit);
    assert!(String::from_utf8_lossy(&written.stdout).contains("systemctl enable --now acoupi-demo"));
    assert!(dir.path().join("recordings").is_dir() && dir.path().join("tmp").is_dir(), "its folders exist for ReadWritePaths");
    let again = acoupi(&["service", "install", pipeline.to_str().unwrap(), "--output", out.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2), "an existing unit is not replaced without --force");

    match Command::new("systemd-analyze").arg("verify").arg(&out).output() {
        Ok(verify) => {
            let said = String::from_utf8_lossy(&verify.stderr);
            assert!(verify.status.success() && !said.contains(&out.display().to_string()), "systemd-analyze verify: {said}");
        }
        Err(error) => println!("skipped systemd-analyze verify: {error}"),
    }
}
