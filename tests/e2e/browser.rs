//! The dashboard in a real browser: headless Chromium driven over WebDriver (Debian's
//! `chromium` and `chromium-driver`; the client is [`webdriver`], the few W3C WebDriver
//! commands the test needs over plain HTTP to 127.0.0.1) against `acoupi run` on a
//! copy of pipelines/birdnet.toml that replays the bundled great tit song once and serves
//! `[web]` on 127.0.0.1.
//!
//! One test walks the pages as a user would: Today's species × hour grid against SQL over
//! the same store (`acoupi query`, which reads a snapshot while the station runs); a play
//! button (the audio element loads, and the same URL answers a Range request with 206);
//! a review from the Detections page, seen without a reload, after a reload and in the
//! store; every stage's name on Station. Every page loads nothing from another origin.
//! The elements it looks for are the stable selectors of docs/dashboard.md ("Selectors
//! for tests").
//!
//! `ACOUPI_SCREENSHOTS=DIR` also saves one PNG per page into DIR (scripts/screenshots.sh
//! writes docs/img/ with it). Without chromium or chromedriver the test skips, unless
//! `ACOUPI_REQUIRE_BROWSER` is set (CI), where it fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use self::webdriver::{Client, Locator};
use crate::{free_local_port, root};

mod webdriver;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Every wait ends within this.
const PATIENCE: Duration = Duration::from_secs(30);
/// The station's Today page on a desktop and on a phone (CSS pixels).
const DESKTOP: (u32, u32) = (1280, 900);
const PHONE_WIDTH: u32 = 390;

/// chromedriver on a free port of 127.0.0.1, killed (by its PID) when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Option<Driver> {
        let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
            .into_iter()
            .filter(|p| !Path::new(p).exists())
            .collect();
        if !missing.is_empty() {
            crate::skip_unless_required(
                "ACOUPI_REQUIRE_BROWSER",
                &format!(
                    "{} not installed (apt-get install chromium chromium-driver)",
                    missing.join(" and ")
                ),
            );
            return None;
        }
        let port = free_local_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(driver)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `acoupi run` on the great tit pipeline in a temporary folder, stopped with SIGTERM
/// (then killed) when dropped.
struct Station {
    child: Child,
    dir: tempfile::TempDir,
    pipeline: PathBuf,
    base: String,
    stages: Vec<String>,
    wavs: usize,
}

impl Station {
    fn start() -> Station {
        let dir = tempfile::tempdir().unwrap();
        let port = free_local_port();
        let source = root().join("pipelines/birdnet.toml");
        let mut pipeline: toml::Table =
            toml::from_str(&std::fs::read_to_string(&source).unwrap()).unwrap();
        let audio = root().join("pipelines/audio/great-tit");
        let wavs = std::fs::read_dir(&audio)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "wav")
            })
            .count();
        pipeline["store"]["path"] = "station.duckdb".into();
        pipeline["paths"]["temp"] = "incoming".into();
        pipeline["paths"]["recordings"] = "recordings".into();
        // Each file once, one a second, at any time of day; no retention (a small disk
        // must not delete the clips the test plays).
        let replay = pipeline["components"]["replay"].as_table_mut().unwrap();
        replay.insert("folder".into(), audio.to_str().unwrap().into());
        replay.insert("loop".into(), false.into());
        let record = pipeline["stages"]["record"].as_table_mut().unwrap();
        record.remove("conditions");
        record.insert("schedule".into(), table(&[("every", "1s")]).into());
        pipeline.remove("retention");
        // The model files, where the source pipeline has them relative to itself.
        let birdnet = pipeline["components"]["birdnet"].as_table_mut().unwrap();
        for key in ["model", "labels"] {
            let path = birdnet[key].as_str().unwrap().to_string();
            birdnet.insert(key.into(), absolute(&path).into());
        }
        let range = birdnet["range_filter"].as_table_mut().unwrap();
        let path = range["model"].as_str().unwrap().to_string();
        range.insert("model".into(), absolute(&path).into());
        let listen = format!("127.0.0.1:{port}");
        pipeline.insert("web".into(), table(&[("listen", &listen)]).into());
        let stages = pipeline["stages"]
            .as_table()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let path = dir.path().join("birdnet.toml");
        std::fs::write(&path, toml::to_string(&pipeline).unwrap()).unwrap();

        let log = std::fs::File::create(dir.path().join("station.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_acoupi"))
            .arg("run")
            .arg(&path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Station {
            child,
            dir,
            pipeline: path,
            base: format!("http://127.0.0.1:{port}"),
            stages,
            wavs,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("station.log")).unwrap_or_default()
    }

    /// Rows of `sql` over the station's store, as JSON objects (`acoupi query` reads a
    /// snapshot while the station holds the file).
    fn query(&self, sql: &str) -> Vec<Value> {
        let out = crate::acoupi_ok(&[
            "query",
            self.pipeline.to_str().unwrap(),
            sql,
            "--format",
            "json",
        ]);
        match serde_json::from_str(&out).unwrap() {
            Value::Array(rows) => rows,
            other => panic!("{sql}: {other}"),
        }
    }

    fn count(&self, sql: &str) -> i64 {
        self.query(sql)[0]["n"].as_i64().unwrap()
    }

    /// Waits until the dashboard answers and every bundled file has been recorded,
    /// analysed and filed by the management stage.
    fn wait_until_filled(&mut self) {
        let deadline = Instant::now() + PATIENCE * 2;
        let address = self.base.trim_start_matches("http://").to_string();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the station stopped ({status}):\n{}", self.log());
            }
            let listening = std::net::TcpStream::connect(&address).is_ok();
            if listening
                && self.count("SELECT count(*) AS n FROM model_outputs") == self.wavs as i64
                && self.count("SELECT count(*) AS n FROM recordings WHERE path LIKE '%/incoming/%'")
                    == 0
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the station did not analyse {} files and serve {} in time:\n{}",
                self.wavs,
                self.base,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Station {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn table(entries: &[(&str, &str)]) -> toml::Table {
    entries
        .iter()
        .map(|(k, v)| ((*k).to_string(), toml::Value::from(*v)))
        .collect()
}

fn absolute(relative_to_pipelines: &str) -> String {
    root()
        .join("pipelines")
        .join(relative_to_pipelines)
        .to_str()
        .unwrap()
        .to_string()
}

/// Headless Chromium at `width` × `height`; clips may play without a user gesture (and
/// make no sound).
fn chrome_options(width: u32, height: u32) -> Value {
    json!({
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                format!("--window-size={width},{height}"),
                "--autoplay-policy=no-user-gesture-required",
                "--mute-audio",
            ],
        }
    })
}

/// Polls `check` (every 100 ms) until it returns `Some`, or fails naming `what`.
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Opens `path`, waits for the document and its images, and checks that nothing came
/// from another origin.
fn open(client: &Client, base: &str, path: &str) {
    client.goto(&format!("{base}{path}")).unwrap();
    wait_for(&format!("{path} to load its images"), || {
        let done = client
            .execute(
                "return document.readyState === 'complete' && \
                 Array.from(document.images).every(i => i.complete);",
                vec![],
            )
            .unwrap();
        done.as_bool().unwrap_or(false).then_some(())
    });
    let foreign = client
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name)\
             .filter(n => !n.startsWith(location.origin + '/'));",
            vec![],
        )
        .unwrap();
    assert_eq!(foreign, json!([]), "{path} loaded from another origin");
}

/// With `ACOUPI_SCREENSHOTS=DIR`, saves the whole page as DIR/NAME.png at `width` CSS
/// pixels (the window grows to the page's height, at most 3 screens).
fn screenshot(client: &Client, name: &str, width: u32) {
    let Some(dir) = std::env::var_os("ACOUPI_SCREENSHOTS") else {
        return;
    };
    client.set_window_size(width, DESKTOP.1).unwrap();
    let height = client
        .execute("return document.documentElement.scrollHeight;", vec![])
        .unwrap()
        .as_u64()
        .unwrap_or(u64::from(DESKTOP.1));
    let height = u32::try_from(height)
        .unwrap()
        .clamp(DESKTOP.1 / 2, DESKTOP.1 * 3);
    client.set_window_size(width, height).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let png = client.screenshot().unwrap();
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    client.set_window_size(DESKTOP.0, DESKTOP.1).unwrap();
}

/// Today's grid as (species, hour) → count, empty cells as 0.
fn grid_from_page(client: &Client) -> BTreeMap<(String, u32), i64> {
    let cells = client
        .execute(
            "return Array.from(document.querySelectorAll(\
             'table.grid tr[data-species] td[data-hour]'))\
             .map(td => [td.closest('tr').dataset.species, td.dataset.hour, td.textContent.trim()]);",
            vec![],
        )
        .unwrap();
    let mut grid = BTreeMap::new();
    for cell in cells.as_array().unwrap() {
        let species = cell[0].as_str().unwrap().to_string();
        let hour: u32 = cell[1].as_str().unwrap().parse().unwrap();
        let text = cell[2].as_str().unwrap();
        let count = if text.is_empty() || text == "·" || text == "-" {
            0
        } else {
            text.parse()
                .unwrap_or_else(|_| panic!("grid cell {species} {hour}: {text:?}"))
        };
        assert!(
            grid.insert((species.clone(), hour), count).is_none(),
            "two cells for {species} at {hour}h"
        );
    }
    grid
}

#[test]
fn the_dashboard_works_in_a_real_browser_on_a_station_that_heard_great_tits() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let mut station = Station::start();
    station.wait_until_filled();
    walk(&driver, &station);
}

fn walk(driver: &Driver, station: &Station) {
    let client = Client::connect(&driver.url, chrome_options(DESKTOP.0, DESKTOP.1));
    let base = station.base.as_str();

    // Today: the species × hour grid equals SQL over the same store (local hours of the
    // deployment's time zone; a detection's time is its recording's start plus its own).
    open(&client, base, "/");
    let shown = grid_from_page(&client);
    let timezone = station_timezone(station);
    let expected: BTreeMap<(String, u32), i64> = station
        .query(&format!(
            "WITH d AS (SELECT tag_value, timezone('{timezone}', recording_created_on \
             + to_microseconds(CAST(start_time * 1e6 AS BIGINT))) AS heard \
             FROM detections_flat WHERE tag_key = 'species') \
             SELECT tag_value AS species, hour(heard) AS hour, count(*) AS n FROM d \
             WHERE CAST(heard AS DATE) = CAST(timezone('{timezone}', now()) AS DATE) \
             GROUP BY ALL"
        ))
        .into_iter()
        .map(|row| {
            let species = row["species"].as_str().unwrap().to_string();
            let hour = u32::try_from(row["hour"].as_i64().unwrap()).unwrap();
            ((species, hour), row["n"].as_i64().unwrap())
        })
        .collect();
    assert!(
        expected.keys().any(|(species, _)| species == "Parus major"),
        "BirdNET heard no great tit: {expected:?}\n{}",
        station.log()
    );
    for (cell, n) in &expected {
        assert_eq!(shown.get(cell), Some(n), "Today's grid at {cell:?}");
    }
    for (cell, n) in &shown {
        assert_eq!(
            expected.get(cell).copied().unwrap_or(0),
            *n,
            "Today's grid at {cell:?}"
        );
    }
    for (species, _) in expected.keys() {
        let hours = shown.keys().filter(|(s, _)| s == species).count();
        assert_eq!(hours, 24, "{species} has 24 hour cells");
    }
    screenshot(&client, "today", DESKTOP.0);
    screenshot(&client, "today-phone", PHONE_WIDTH);

    // A play button: the clip loads in the audio element, and its URL answers a Range
    // request with 206.
    let audio = client.find(Locator::Css(".clip audio")).unwrap();
    client
        .execute("arguments[0].scrollIntoView();", vec![audio.json()])
        .unwrap();
    audio.click().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // A click on the middle of the controls may land on the time line rather than the
    // play button; play() is what that button does.
    client
        .execute(
            "const a = arguments[0]; if (a.paused) { a.play().catch(() => {}); }",
            vec![audio.json()],
        )
        .unwrap();
    let state = wait_for("the clip to load", || {
        let state = client
            .execute(
                "const a = arguments[0]; return {ready: a.readyState, \
                 duration: a.duration || 0, error: a.error && a.error.code, src: a.currentSrc};",
                vec![audio.json()],
            )
            .unwrap();
        assert!(
            state["error"].is_null(),
            "the audio element failed: {state}"
        );
        (state["ready"].as_u64().unwrap_or(0) >= 1
            && state["duration"].as_f64().unwrap_or(0.0) > 0.0)
            .then_some(state)
    });
    let src = state["src"].as_str().unwrap().to_string();
    assert!(
        src.starts_with(&format!("{base}/api/v1/recordings/")),
        "{src}"
    );
    let range = client
        .execute_async(
            "const done = arguments[arguments.length - 1]; \
             fetch(arguments[0], {headers: {Range: 'bytes=0-99'}}).then(async r => done({ \
             status: r.status, range: r.headers.get('content-range'), \
             length: (await r.arrayBuffer()).byteLength})).catch(e => done({error: String(e)}));",
            vec![json!(src)],
        )
        .unwrap();
    assert_eq!(range["status"], 206, "Range request on {src}: {range}");
    assert_eq!(range["length"], 100, "{range}");
    assert!(
        range["range"]
            .as_str()
            .unwrap_or("")
            .starts_with("bytes 0-99/"),
        "{range}"
    );

    // A review from the Detections page: the verdict shows at once (htmx), after a reload,
    // and in the store.
    open(&client, base, "/detections");
    screenshot(&client, "detections", DESKTOP.0);
    let controls = client
        .find(Locator::Css("form.review[data-detection]"))
        .unwrap();
    let id = controls.attr("data-detection").unwrap().unwrap();
    controls
        .find(Locator::Css(
            "button[name=\"verdict\"][value=\"false_positive\"]",
        ))
        .unwrap()
        .click()
        .unwrap();
    let verdict = format!("form.review[data-detection=\"{id}\"] .verdict.verdict-false_positive");
    wait_for("the verdict to show without a reload", || {
        client.find(Locator::Css(&verdict)).ok()
    });
    client.refresh().unwrap();
    wait_for("the verdict to show after a reload", || {
        client.find(Locator::Css(&verdict)).ok()
    });
    let stored = station.query(&format!(
        "SELECT verdict FROM reviews WHERE detection_id = '{id}' ORDER BY reviewed_on DESC LIMIT 1"
    ));
    assert_eq!(stored, vec![json!({ "verdict": "false_positive" })], "{id}");

    // Station: every stage by name.
    open(&client, base, "/station");
    let names = client
        .execute(
            "return Array.from(document.querySelectorAll('table.stages td.stage-name'))\
             .map(td => td.textContent.trim());",
            vec![],
        )
        .unwrap();
    for stage in &station.stages {
        assert!(
            names
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n == stage.as_str()),
            "stage {stage} is not on Station: {names}"
        );
    }
    screenshot(&client, "station", DESKTOP.0);

    // The other pages, for the pictures: the species heard, the best great tit recording.
    if std::env::var_os("ACOUPI_SCREENSHOTS").is_some() {
        open(&client, base, "/species/Parus%20major");
        screenshot(&client, "species", DESKTOP.0);
        let best = station.query(
            "SELECT CAST(recording_id AS VARCHAR) AS id FROM detections_flat \
             WHERE tag_key = 'species' ORDER BY tag_confidence DESC LIMIT 1",
        );
        let recording = best[0]["id"].as_str().unwrap();
        open(&client, base, &format!("/recordings/{recording}"));
        screenshot(&client, "recording", DESKTOP.0);
        open(&client, base, "/analytics");
        screenshot(&client, "analytics", DESKTOP.0);
    }
    client.close().unwrap();
}

/// The deployment's time zone, as the pipeline gives it (UTC without one).
fn station_timezone(station: &Station) -> String {
    let text = std::fs::read_to_string(&station.pipeline).unwrap();
    let pipeline: toml::Table = toml::from_str(&text).unwrap();
    pipeline["deployment"]
        .get("timezone")
        .and_then(|t| t.as_str())
        .unwrap_or("UTC")
        .to_string()
}

/// The harness itself, on a static page (no station): the WebDriver client opens a page,
/// runs scripts (also asynchronous ones), finds and clicks elements, reloads, and takes a
/// PNG screenshot; chromedriver ends with the guard.
#[test]
fn the_webdriver_client_drives_chromium_on_a_static_page() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let port = server.server_addr().to_ip().unwrap().port();
    let page = "<!doctype html><title>t</title><table class=\"stages\"><tr>\
                <td class=\"stage-name\">record</td><td class=\"stage-name\">detect</td>\
                </tr></table><form data-detection=\"d1\"><button name=\"verdict\" \
                value=\"unsure\" type=\"button\">unsure</button></form>";
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            let header: tiny_http::Header = "Content-Type: text/html".parse().unwrap();
            let _ = request.respond(tiny_http::Response::from_string(page).with_header(header));
        }
    });
    let client = Client::connect(&driver.url, chrome_options(DESKTOP.0, DESKTOP.1));
    let base = format!("http://127.0.0.1:{port}");
    open(&client, &base, "/");
    let names = client
        .execute(
            "return Array.from(document.querySelectorAll('table.stages td.stage-name'))\
             .map(td => td.textContent.trim());",
            vec![],
        )
        .unwrap();
    assert_eq!(names, json!(["record", "detect"]));
    let form = client.find(Locator::Css("form[data-detection]")).unwrap();
    assert_eq!(form.attr("data-detection").unwrap().as_deref(), Some("d1"));
    let button = form
        .find(Locator::Css("button[name=\"verdict\"][value=\"unsure\"]"))
        .unwrap();
    client
        .execute(
            "arguments[0].addEventListener('click', () => document.title = 'clicked');",
            vec![button.json()],
        )
        .unwrap();
    button.click().unwrap();
    assert_eq!(
        client.execute("return document.title;", vec![]).unwrap(),
        "clicked"
    );
    let later = client
        .execute_async(
            "const done = arguments[arguments.length - 1]; setTimeout(() => done(41 + 1), 10);",
            vec![],
        )
        .unwrap();
    assert_eq!(later, 42);
    client.refresh().unwrap();
    assert_eq!(
        client.execute("return document.title;", vec![]).unwrap(),
        "t"
    );
    assert!(client.find(Locator::Css("audio.none")).is_err());
    client.set_window_size(PHONE_WIDTH, 700).unwrap();
    let png = client.screenshot().unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    client.close().unwrap();
}
