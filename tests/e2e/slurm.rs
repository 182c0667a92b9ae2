//! The cluster recipes on a real Slurm: the test starts munged, slurmctld and slurmd
//! (Debian's `slurm-wlm` and `munge`, as root) under a temporary folder with ports of
//! its own, submits the repository's `deploy/slurm/reprocess.sbatch` as a 4-task array
//! over a synthetic archive of mixed file lengths (with a plan), and
//! `deploy/slurm/merge.sbatch` with the dependency; cancels one task mid-run and
//! resubmits its index; and checks the merged store against an unsharded run, the
//! shards' balance, the resume and `acoupi reprocess --status`. Without root or the
//! Slurm programs it skips, unless `ACOUPI_REQUIRE_SLURM` (or, without root,
//! `ACOUPI_REQUIRE_ROOT`) is set: CI sets them, and there a skip is a failure.
//!
//! Also here: the Kubernetes recipes in `deploy/k8s/`, parsed and checked for the
//! fields the reprocess interface depends on.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::acoupi_ok;
use crate::root;
use crate::run::demo_in;

const PROGRAMS: [&str; 9] = [
    "munged",
    "mungekey",
    "slurmctld",
    "slurmd",
    "sbatch",
    "squeue",
    "sinfo",
    "scontrol",
    "scancel",
];
/// Every wait of the test is bounded by this.
const WAIT: Duration = Duration::from_secs(120);
const SHARDS: u32 = 4;

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|dir| dir.join(program).is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Whether the test can run here; says why not (or fails where it is required).
fn cluster_possible() -> bool {
    let missing: Vec<&str> = PROGRAMS.into_iter().filter(|p| !on_path(p)).collect();
    if !missing.is_empty() {
        crate::skip_unless_required(
            "ACOUPI_REQUIRE_SLURM",
            &format!(
                "Slurm/munge programs missing ({}; apt-get install slurm-wlm munge)",
                missing.join(", ")
            ),
        );
        return false;
    }
    if !is_root() {
        let reason = "a test Slurm cluster needs root (slurmd runs jobs as their user)";
        crate::skip_unless_required("ACOUPI_REQUIRE_ROOT", reason);
        crate::skip_unless_required("ACOUPI_REQUIRE_SLURM", reason);
        return false;
    }
    true
}

/// Two free ports (both held while asked for, so they differ).
fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

fn program(name: &str) -> PathBuf {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// A single-node Slurm cluster under `base`; stopped (and its daemons killed) on drop,
/// also when the test panics.
struct Cluster {
    base: PathBuf,
    conf: PathBuf,
    daemons: Vec<(&'static str, Child)>,
}

impl Cluster {
    fn start(base: &Path) -> Cluster {
        for dir in ["munge", "state", "spool", "log", "out"] {
            std::fs::create_dir_all(base.join(dir)).unwrap();
        }
        // munged refuses a socket folder that is not world-executable (and a temporary
        // folder is 0700).
        for dir in [base.to_path_buf(), base.join("munge")] {
            std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        let munge = base.join("munge");
        let key = munge.join("munge.key");
        let socket = munge.join("munge.socket.2");
        let status = Command::new(program("mungekey"))
            .arg("--create")
            .arg(format!("--keyfile={}", key.display()))
            .arg("--force")
            .status()
            .unwrap();
        assert!(status.success(), "mungekey failed");
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let mut cluster = Cluster {
            base: base.to_path_buf(),
            conf: base.join("slurm.conf"),
            daemons: Vec::new(),
        };
        let munged = Command::new(program("munged"))
            .arg("-F")
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", munge.join("munged.pid").display()))
            .arg(format!(
                "--seed-file={}",
                munge.join("munged.seed").display()
            ))
            .arg(format!("--log-file={}", munge.join("munged.log").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        cluster.daemons.push(("munged", munged));
        wait_for("the munge socket", Duration::from_secs(10), || {
            socket.exists()
        });
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let b = base.display();
        let (ctld, slurmd) = free_ports();
        let conf = format!(
            "ClusterName=acoupitest\nSlurmctldHost=localhost\nSlurmctldPort={ctld}\nSlurmdPort={slurmd}\n\
             AuthType=auth/munge\nCredType=cred/munge\nAuthInfo=socket={socket}\n\
             SlurmUser=root\nSlurmdUser=root\nStateSaveLocation={b}/state\nSlurmdSpoolDir={b}/spool\n\
             SlurmctldPidFile={b}/slurmctld.pid\nSlurmdPidFile={b}/slurmd.pid\n\
             SlurmctldLogFile={b}/log/slurmctld.log\nSlurmdLogFile={b}/log/slurmd.log\n\
             ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nJobAcctGatherType=jobacct_gather/none\n\
             AccountingStorageType=accounting_storage/none\nJobCompType=jobcomp/none\nMpiDefault=none\n\
             MailProg=/bin/true\nSwitchType=switch/none\nSelectType=select/cons_tres\nSelectTypeParameters=CR_Core\n\
             SchedulerType=sched/backfill\nReturnToService=2\n\
             NodeName=localhost CPUs={cpus} State=UNKNOWN\n\
             PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP\n",
            socket = socket.display(),
        );
        std::fs::write(&cluster.conf, conf).unwrap();
        for (name, args) in [
            ("slurmctld", vec!["-D"]),
            ("slurmd", vec!["-D", "-N", "localhost"]),
        ] {
            let log =
                std::fs::File::create(base.join("log").join(format!("{name}.stderr"))).unwrap();
            let child = Command::new(program(name))
                .args(&args)
                .arg("-f")
                .arg(&cluster.conf)
                .env("SLURM_CONF", &cluster.conf)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap();
            cluster.daemons.push((name, child));
        }
        let idle = wait_until(Duration::from_secs(60), || {
            cluster
                .output("sinfo", &["-h", "-n", "localhost", "-o", "%T"])
                .trim()
                == "idle"
        });
        assert!(idle, "the node never became idle:\n{}", cluster.logs());
        cluster
    }

    /// A Slurm client command for this cluster.
    fn command(&self, name: &str) -> Command {
        let mut command = Command::new(program(name));
        command.env("SLURM_CONF", &self.conf);
        command
    }

    /// The stdout of a client command (whatever its status).
    fn output(&self, name: &str, args: &[&str]) -> String {
        self.command(name)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Submits with `sbatch --parsable` and returns the job id.
    fn sbatch(&self, args: &[&str]) -> String {
        let output = self
            .command("sbatch")
            .arg("--parsable")
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "sbatch {args:?}: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    }

    /// Whether the job (or any task of the array) is still in the queue.
    fn queued(&self, job: &str) -> bool {
        !self.output("squeue", &["-h", "-j", job]).trim().is_empty()
    }

    fn wait_gone(&self, job: &str) {
        let gone = wait_until(WAIT, || !self.queued(job));
        assert!(
            gone,
            "job {job} still queued after {WAIT:?}:\n{}",
            self.logs()
        );
    }

    /// `JobState=...` of each job (task) `scontrol show job` lists for `job`.
    fn states(&self, job: &str) -> Vec<String> {
        self.output("scontrol", &["show", "job", job])
            .split_whitespace()
            .filter_map(|w| w.strip_prefix("JobState="))
            .map(String::from)
            .collect()
    }

    fn logs(&self) -> String {
        let mut text = String::new();
        for name in [
            "slurmctld.log",
            "slurmd.log",
            "slurmctld.stderr",
            "slurmd.stderr",
        ] {
            let log = std::fs::read_to_string(self.base.join("log").join(name)).unwrap_or_default();
            let lines: Vec<&str> = log.lines().filter(|l| !l.contains("pmix")).collect();
            let tail = &lines[lines.len().saturating_sub(15)..];
            text.push_str(&format!("--- {name}\n{}\n", tail.join("\n")));
        }
        text
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .command("scontrol")
            .arg("shutdown")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // scontrol shutdown stops slurmctld and slurmd; munged, and anything that did
        // not stop within 5 s, is killed.
        for (_, child) in self.daemons.iter_mut().rev() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && child.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    done()
}

fn wait_for(what: &str, limit: Duration, done: impl FnMut() -> bool) {
    assert!(wait_until(limit, done), "{what}: not there after {limit:?}");
}

/// One unsharded run of `pipeline` over `archive` into `store`: the reference a sharded
/// run is compared with.
fn unsharded(pipeline: &Path, archive: &Path, store: &Path) {
    acoupi_ok(&[
        "reprocess",
        text(pipeline),
        text(archive),
        "--store",
        text(store),
        "--progress",
        "off",
    ]);
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Distinct lengths (seconds) of the synthetic recordings, and how many hard links of
/// each the archive holds: mixed lengths, so hash shards would be uneven; 4,900 s in
/// all, so that each task runs for seconds and can be caught mid-run.
const LENGTHS: [(u32, usize); 5] = [(90, 16), (40, 40), (20, 60), (8, 60), (3, 60)];
const RATE: u32 = 16_000;
const LONGEST: f64 = 90.0;

/// A WAV of `seconds` at 16 kHz: low noise with 4 kHz tone bursts (the demo model's
/// band is 2.5-7 kHz), `bursts` per 10 s, so files differ in their detections.
fn write_wav(path: &Path, seconds: u32, bursts: u32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    let mut seed: u32 = 0x1234_5678 ^ seconds;
    let period = (10 * RATE / bursts.max(1)) as usize;
    for n in 0..(seconds * RATE) as usize {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let noise = f64::from((seed >> 16) as i16) / 32768.0 * 200.0;
        let in_burst = n % period < (RATE as usize / 5);
        let tone = if in_burst {
            (n as f64 * 4000.0 * std::f64::consts::TAU / f64::from(RATE)).sin() * 8000.0
        } else {
            0.0
        };
        writer.write_sample((noise + tone) as i16).unwrap();
    }
    writer.finalize().unwrap();
}

/// The archive: each length written once, then hard-linked under site folders.
fn archive(dir: &Path, lengths: &[(u32, usize)]) -> PathBuf {
    let sources = dir.join("sources");
    let archive = dir.join("archive");
    std::fs::create_dir_all(&sources).unwrap();
    let mut n = 0;
    for (i, (seconds, copies)) in lengths.iter().enumerate() {
        let source = sources.join(format!("{seconds}s.wav"));
        write_wav(&source, *seconds, 1 + i as u32);
        for copy in 0..*copies {
            let folder = archive.join(format!("site-{}", n % 3));
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::hard_link(
                &source,
                folder.join(format!("rec-{n:03}-{seconds}s-{copy}.wav")),
            )
            .unwrap();
            n += 1;
        }
    }
    archive
}

fn query<T: duckdb::types::FromSql>(db: &Path, sql: &str) -> Vec<Vec<T>> {
    let conn = duckdb::Connection::open(db).unwrap();
    let mut statement = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    statement
        .query_map([], |row| {
            let columns = row.as_ref().column_count();
            (0..columns).map(|i| row.get(i)).collect()
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn count(db: &Path, sql: &str) -> i64 {
    query::<i64>(db, sql)[0][0]
}

/// Per archive file: its detections and their scores, and its messages.
fn per_file(db: &Path) -> Vec<Vec<String>> {
    query(
        db,
        "SELECT r.path, count(d.id)::VARCHAR, coalesce(round(sum(d.detection_score), 6), 0)::VARCHAR \
         FROM recordings r LEFT JOIN model_outputs mo ON mo.recording_id = r.id \
         LEFT JOIN detections d ON d.model_output_id = mo.id GROUP BY r.path ORDER BY r.path",
    )
}

fn status_files(out: &Path) -> BTreeMap<String, serde_json::Value> {
    // Empty until the first task has made the folder.
    std::fs::read_dir(out)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".status.json"))
        .filter_map(|p| {
            let value = serde_json::from_slice(&std::fs::read(&p).ok()?).ok()?;
            Some((p.file_name()?.to_string_lossy().into_owned(), value))
        })
        .collect()
}

/// `(in this shard, already done, analysed)` from a task's report.
fn report_counts(log: &str) -> (u64, u64, u64) {
    let line = log
        .lines()
        .find(|l| l.starts_with("files: "))
        .unwrap_or_else(|| panic!("no report in:\n{log}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    (numbers[1], numbers[2], numbers[3])
}

#[test]
fn a_four_task_array_with_a_cancelled_task_merges_into_the_unsharded_result() {
    if !cluster_possible() {
        return;
    }
    let started = Instant::now();
    let mut timings = Vec::new();
    let lap = |what: &str, timings: &mut Vec<String>| {
        timings.push(format!("{what}: {:.1} s", started.elapsed().as_secs_f64()));
    };
    let dir = tempfile::tempdir().unwrap();
    // munged wants the folders above its socket world-executable.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let pipeline = demo_in(dir.path());
    let archive = archive(dir.path(), &LENGTHS);
    let files: usize = LENGTHS.iter().map(|(_, n)| n).sum();
    lap("archive written", &mut timings);

    // The plan: one walk, durations from the headers.
    let plan = dir.path().join("season.plan.parquet");
    let planned = acoupi_ok(&[
        "reprocess",
        "--plan",
        text(&plan),
        text(&archive),
        "--shards",
        "4",
    ]);
    assert!(
        planned.contains(&format!("files: {files} (0 without a readable header)")),
        "{planned}"
    );

    // The reference: one unsharded run.
    let whole = dir.path().join("whole.duckdb");
    unsharded(&pipeline, &archive, &whole);
    let expected = per_file(&whole);
    assert_eq!(expected.len(), files);
    assert!(
        count(&whole, "SELECT count(*) FROM detections") > 0,
        "the synthetic bursts must be detected, or the comparison proves little"
    );
    lap("plan and unsharded run", &mut timings);

    let cluster = Cluster::start(&dir.path().join("slurm"));
    lap("cluster up", &mut timings);
    let out = dir.path().join("out");
    let logs = dir.path().join("slurm/out");
    let reprocess_script = root().join("deploy/slurm/reprocess.sbatch");
    let merge_script = root().join("deploy/slurm/merge.sbatch");
    let exports = |extra: &str| {
        format!(
            "ALL,ACOUPI_PIPELINE={},ACOUPI_ARCHIVE={},ACOUPI_OUT={},ACOUPI_BIN={},ACOUPI_PLAN={}{extra}",
            text(&pipeline),
            text(&archive),
            text(&out),
            env!("CARGO_BIN_EXE_acoupi"),
            text(&plan),
        )
    };
    let task_log = format!("{}/reprocess-%A_%a.out", text(&logs));
    let merge_log = format!("{}/merge-%j.out", text(&logs));
    let array = cluster.sbatch(&[
        "--array=1-4",
        "--cpus-per-task=1",
        "--chdir",
        text(&logs),
        "-o",
        &task_log,
        &format!("--export={}", exports("")),
        text(&reprocess_script),
    ]);
    let doomed_merge = cluster.sbatch(&[
        &format!("--dependency=afterok:{array}"),
        "--kill-on-invalid-dep=yes",
        "--chdir",
        text(&logs),
        "-o",
        &merge_log,
        &format!("--export={}", exports("")),
        text(&merge_script),
    ]);

    // Catch a task that has committed some of its files and not all, cancel it.
    let mut victim = None;
    let mut seen_running = String::new();
    let caught = wait_until(WAIT, || {
        for (name, status) in status_files(&out) {
            let done = status["files_done"].as_u64().unwrap_or(0);
            let total = status["files_total"].as_u64().unwrap_or(0);
            if status["state"] == "running" && done >= 1 && 2 * done <= total {
                // What --status says at this moment.
                seen_running = acoupi_ok(&["reprocess", "--status", text(&out)]);
                victim = Some((name, status));
                return true;
            }
        }
        false
    });
    assert!(caught, "no task was caught mid-run:\n{}", cluster.logs());
    let (victim_file, victim_status) = victim.unwrap();
    let shard = victim_status["shard"].as_str().unwrap().to_owned();
    let index = shard.split('/').next().unwrap().to_owned();
    cluster
        .command("scancel")
        .arg(format!("{array}_{index}"))
        .status()
        .unwrap();
    lap(&format!("task {index} cancelled"), &mut timings);
    assert!(seen_running.contains("running"), "{seen_running}");
    // The task may have written again in between: as many files or more, of the same total.
    let line = seen_running
        .lines()
        .find(|l| l.contains(&victim_file))
        .unwrap_or_else(|| panic!("{seen_running}"));
    let shown = line
        .split_once(": running ")
        .and_then(|(_, rest)| rest.split_once(" files"))
        .and_then(|(counts, _)| counts.split_once('/'))
        .map(|(done, total)| (done.parse::<u64>().unwrap(), total.parse::<u64>().unwrap()))
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        shown.0 >= victim_status["files_done"].as_u64().unwrap()
            && shown.1 == victim_status["files_total"].as_u64().unwrap(),
        "--status must show what the status file says: {line} / {victim_status}"
    );
    assert!(seen_running.contains("ETA: "), "{seen_running}");

    cluster.wait_gone(&array);
    // The merge depended on every task: with one cancelled it never runs.
    cluster.wait_gone(&doomed_merge);
    lap("array and the first merge gone", &mut timings);
    assert!(!out.join("merged.duckdb").exists());
    let states = cluster.states(&array);
    assert_eq!(
        states.iter().filter(|s| *s == "COMPLETED").count(),
        3,
        "{states:?}"
    );
    assert!(states.iter().any(|s| s == "CANCELLED"), "{states:?}");

    // --status tells the truth: three done, the cancelled one stopped; the done ones'
    // counts are their stores'.
    let after_cancel = acoupi_ok(&["reprocess", "--status", text(&out)]);
    assert!(
        after_cancel.starts_with("tasks: 4 reported of 4: 3 done, 1 stopped"),
        "{after_cancel}"
    );
    let victim_store = out.join(victim_file.replace(".status.json", ".duckdb"));
    let committed = count(&victim_store, "SELECT count(*) FROM reprocessed_files");
    let claimed = status_files(&out)[&victim_file]["files_done"]
        .as_i64()
        .unwrap();
    assert!(
        committed >= claimed && claimed >= 1,
        "the status file claims {claimed} files done, the store holds {committed}"
    );
    for (name, status) in status_files(&out) {
        if name != victim_file {
            let store = out.join(name.replace(".status.json", ".duckdb"));
            assert_eq!(
                count(&store, "SELECT count(*) FROM reprocessed_files"),
                status["files_done"].as_i64().unwrap(),
                "{name}"
            );
        }
    }

    // The cancelled index again, alone (ACOUPI_SHARDS keeps it shard I of 4), then the
    // merge after it.
    let rerun = cluster.sbatch(&[
        &format!("--array={index}"),
        "--cpus-per-task=1",
        "--chdir",
        text(&logs),
        "-o",
        &task_log,
        &format!("--export={}", exports(&format!(",ACOUPI_SHARDS={SHARDS}"))),
        text(&reprocess_script),
    ]);
    let merge = cluster.sbatch(&[
        &format!("--dependency=afterok:{rerun}"),
        "--kill-on-invalid-dep=yes",
        "--chdir",
        text(&logs),
        "-o",
        &merge_log,
        &format!("--export={}", exports("")),
        text(&merge_script),
    ]);
    cluster.wait_gone(&rerun);
    cluster.wait_gone(&merge);
    lap("rerun and merge done", &mut timings);
    assert_eq!(cluster.states(&merge), ["COMPLETED"], "{}", cluster.logs());
    let rerun_log =
        std::fs::read_to_string(logs.join(format!("reprocess-{rerun}_{index}.out"))).unwrap();
    let (in_shard, skipped, analysed) = report_counts(&rerun_log);
    assert!(
        skipped as i64 >= committed && skipped >= 1,
        "the rerun resumes: {rerun_log}"
    );
    assert_eq!(skipped + analysed, in_shard, "{rerun_log}");
    assert!(
        rerun_log.contains(&format!("shard {index}/4")),
        "{rerun_log}"
    );

    // The merged store is the unsharded run: same files, same detections, nothing twice.
    let merged = out.join("merged.duckdb");
    assert_eq!(per_file(&merged), expected);
    for table in ["recordings", "reprocessed_files"] {
        assert_eq!(
            count(&merged, &format!("SELECT count(*) FROM {table}")),
            files as i64,
            "{table}"
        );
    }
    for table in ["detections", "messages"] {
        let sql = format!("SELECT count(*) FROM {table}");
        assert_eq!(count(&merged, &sql), count(&whole, &sql), "{table}");
    }
    assert_eq!(
        count(
            &victim_store,
            "SELECT count(*) - count(DISTINCT path) FROM recordings"
        ),
        0,
        "the resumed shard stored a file twice"
    );

    // The plan's shards hold equal audio, to within the longest file.
    let mut audio = Vec::new();
    for i in 1..=SHARDS {
        let store = out.join(format!("shard-{i}-of-{SHARDS}.duckdb"));
        audio.push(query::<f64>(&store, "SELECT coalesce(sum(duration), 0) FROM recordings")[0][0]);
    }
    let max = audio.iter().copied().fold(f64::MIN, f64::max);
    let min = audio.iter().copied().fold(f64::MAX, f64::min);
    assert!(max - min <= LONGEST + 1e-6, "shard audio {audio:?}");
    let finished = acoupi_ok(&["reprocess", "--status", text(&out)]);
    assert!(finished.contains("4 reported of 4: 4 done"), "{finished}");
    assert!(
        finished.contains("complete: every task is done"),
        "{finished}"
    );
    drop(cluster);
    lap("cluster stopped", &mut timings);
    println!(
        "shard audio (s): {audio:?}, max/min {:.3}; timings: {}",
        max / min,
        timings.join(", ")
    );
}

/// The Kubernetes recipes parse, and carry what `--shard auto` and the merge rely on.
#[test]
fn the_kubernetes_recipes_are_indexed_jobs_on_a_shared_volume() {
    use yaml_rust2::{Yaml, YamlLoader};
    let load = |name: &str| -> Yaml {
        let source = std::fs::read_to_string(root().join("deploy/k8s").join(name)).unwrap();
        let mut docs = YamlLoader::load_from_str(&source).unwrap();
        assert_eq!(docs.len(), 1, "{name}: one document");
        docs.remove(0)
    };
    let env_of = |container: &Yaml| -> BTreeMap<String, Yaml> {
        container["env"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap().to_owned(), e.clone()))
            .collect()
    };
    let claims = |pod: &Yaml| -> Vec<String> {
        pod["volumes"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|v| {
                v["persistentVolumeClaim"]["claimName"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };

    let job = load("reprocess-job.yaml");
    assert_eq!(job["apiVersion"].as_str(), Some("batch/v1"));
    assert_eq!(job["kind"].as_str(), Some("Job"));
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));
    assert!(
        spec["backoffLimitPerIndex"]
            .as_i64()
            .is_some_and(|n| n >= 1)
    );
    let completions = spec["completions"].as_i64().unwrap();
    let pod = &spec["template"]["spec"];
    // backoffLimitPerIndex needs pods that are not restarted in place.
    assert_eq!(pod["restartPolicy"].as_str(), Some("Never"));
    let container = &pod["containers"][0];
    let env = env_of(container);
    for name in [
        "ACOUPI_PIPELINE",
        "ACOUPI_ARCHIVE",
        "ACOUPI_OUT",
        "ACOUPI_SHARDS",
    ] {
        assert!(env.contains_key(name), "{name} missing");
    }
    assert_eq!(
        env["ACOUPI_SHARDS"]["value"].as_str(),
        Some(completions.to_string().as_str()),
        "the shard count must equal completions"
    );
    let args: Vec<&str> = container["args"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let joined = args.join(" ");
    assert!(args.starts_with(&["reprocess", "$(ACOUPI_PIPELINE)", "$(ACOUPI_ARCHIVE)"]));
    assert!(joined.contains("--shard auto"), "{joined}");
    assert!(joined.contains("--out $(ACOUPI_OUT)"), "{joined}");
    let out = env["ACOUPI_OUT"]["value"].as_str().unwrap();
    let mounts: Vec<(&str, bool)> = container["volumeMounts"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["mountPath"].as_str().unwrap(),
                m["readOnly"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert!(
        mounts
            .iter()
            .any(|(path, read_only)| out.starts_with(path) && !read_only),
        "ACOUPI_OUT {out} must be on a writable mount: {mounts:?}"
    );
    let reprocess_claims = claims(pod);

    let merge = load("merge-job.yaml");
    assert_eq!(merge["kind"].as_str(), Some("Job"));
    let merge_pod = &merge["spec"]["template"]["spec"];
    let merge_container = &merge_pod["containers"][0];
    let merge_env = env_of(merge_container);
    assert_eq!(
        merge_env["ACOUPI_OUT"]["value"].as_str(),
        Some(out),
        "the merge reads where the shards were written"
    );
    let script = merge_container["args"][0].as_str().unwrap();
    assert!(
        script.contains("merge \"$ACOUPI_OUT/merged.duckdb\""),
        "{script}"
    );
    let merge_claims = claims(merge_pod);
    assert!(
        merge_claims.iter().all(|c| reprocess_claims.contains(c)) && !merge_claims.is_empty(),
        "the merge mounts the reprocess Job's shared volume: {merge_claims:?} / {reprocess_claims:?}"
    );
}

/// `--shard auto` outside any array engine says which variables it looked for; inside
/// one (a Kubernetes index here) it picks its shard and `--out` names the store after it.
#[test]
fn shard_auto_takes_the_task_from_the_engine_variables_or_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let archive = archive(dir.path(), &[(2, 3)]);
    let out = dir.path().join("out");
    let engine_vars = [
        "SLURM_ARRAY_TASK_ID",
        "JOB_COMPLETION_INDEX",
        "AWS_BATCH_JOB_ARRAY_INDEX",
        "CLOUD_RUN_TASK_INDEX",
        "ACOUPI_SHARDS",
    ];
    let run = |vars: &[(&str, &str)], extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_acoupi"));
        command.args([
            "reprocess",
            text(&pipeline),
            text(&archive),
            "--shard",
            "auto",
        ]);
        command
            .args(["--out", text(&out), "--progress", "off"])
            .args(extra);
        for var in engine_vars {
            command.env_remove(var);
        }
        command.envs(vars.iter().copied()).output().unwrap()
    };
    let outside = run(&[], &[]);
    assert_eq!(outside.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&outside.stderr);
    assert!(
        stderr.contains("SLURM_ARRAY_TASK_ID") && stderr.contains("JOB_COMPLETION_INDEX"),
        "{stderr}"
    );
    let no_count = run(&[("JOB_COMPLETION_INDEX", "1")], &[]);
    assert_eq!(no_count.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_count.stderr).contains("--shards N"));

    let inside = run(&[("JOB_COMPLETION_INDEX", "1")], &["--shards", "2"]);
    assert!(
        inside.status.success(),
        "{}",
        String::from_utf8_lossy(&inside.stderr)
    );
    assert!(String::from_utf8_lossy(&inside.stderr).contains("shard 2/2 (from Kubernetes"));
    let store = out.join("shard-2-of-2.duckdb");
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("shard-2-of-2.status.json")).unwrap())
            .unwrap();
    assert_eq!(status["state"], "done");
    assert_eq!(status["shard"], "2/2");
    assert_eq!(
        status["files_done"].as_i64().unwrap(),
        count(&store, "SELECT count(*) FROM reprocessed_files")
    );
    let shown = acoupi_ok(&["reprocess", "--status", text(&out)]);
    assert!(
        shown.starts_with("tasks: 1 reported of 2: 1 done"),
        "{shown}"
    );
}

/// Locally, without a scheduler: a plan splits the archive by duration, the shards'
/// hive-partitioned Parquet together is the whole archive's, and a rerun of a shard
/// rewrites its part files without duplicating a row.
#[test]
fn plan_shards_leave_partitioned_parquet_that_a_rerun_never_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let lengths = [(12, 2), (4, 3), (2, 4)];
    let archive = archive(dir.path(), &lengths);
    let plan = dir.path().join("plan.parquet");
    let planned = acoupi_ok(&[
        "reprocess",
        "--plan",
        text(&plan),
        text(&archive),
        "--shards",
        "3",
    ]);
    assert!(
        planned.contains("files: 9 (0 without a readable header)"),
        "{planned}"
    );
    assert!(planned.contains("3 shards: "), "{planned}");
    let out = dir.path().join("out");
    let shard = |i: u32| {
        acoupi_ok(&[
            "reprocess",
            text(&pipeline),
            text(&archive),
            "--plan",
            text(&plan),
            "--shard",
            &format!("{i}/3"),
            "--out",
            text(&out),
            "--format",
            "parquet",
            "--progress",
            "off",
        ])
    };
    let mut audio = Vec::new();
    for i in 1..=3 {
        let report = shard(i);
        assert!(report.contains("files: 9 found"), "{report}");
        let store = out.join(format!("shard-{i}-of-3.duckdb"));
        audio.push(query::<f64>(&store, "SELECT coalesce(sum(duration), 0) FROM recordings")[0][0]);
    }
    let max = audio.iter().copied().fold(f64::MIN, f64::max);
    let min = audio.iter().copied().fold(f64::MAX, f64::min);
    assert!(max - min <= 12.0 + 1e-6, "{audio:?}");
    assert!((audio.iter().sum::<f64>() - 44.0).abs() < 1e-6, "{audio:?}");
    let rerun = shard(2);
    assert!(rerun.contains("0 analysed"), "{rerun}");

    let whole = dir.path().join("whole.duckdb");
    unsharded(&pipeline, &archive, &whole);
    let flat = count(&whole, "SELECT count(*) FROM detections_flat");
    assert!(flat > 0);
    let conn = duckdb::Connection::open_in_memory().unwrap();
    let in_place: (i64, i64, i64) = conn
        .query_row(
            &format!(
                "SELECT count(*), count(DISTINCT filename), count(DISTINCT deployment) \
                 FROM read_parquet('{}/parquet/detections/**/*.parquet', hive_partitioning = true, filename = true)",
                text(&out)
            ),
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    assert_eq!(in_place.0, flat, "the season in place holds every row once");
    assert!(
        in_place.1 >= 3,
        "one part file per shard and day at least: {in_place:?}"
    );
    assert_eq!(in_place.2, 1);
    let recordings: (i64, i64) = conn
        .query_row(
            &format!(
                "SELECT count(*), count(DISTINCT path) FROM read_parquet('{}/parquet/recordings/**/*.parquet')",
                text(&out)
            ),
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!(recordings, (9, 9), "every recording once");
}
