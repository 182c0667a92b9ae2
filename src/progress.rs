//! Showing a reprocessing batch's progress ([`ProgressDisplay`], the engine's
//! [`Progress`]): an `indicatif` bar on a terminal (files, audio hours, throughput as a
//! multiple of real time, ETA by bytes), or an `info` log line every interval when the
//! output is not a terminal (Slurm and Kubernetes logs).

use std::time::{Duration, Instant};

use acoupi_engine::reprocess::{Progress, Totals};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A progress bar on stderr.
    Bar,
    /// A log line every so often.
    Log(Duration),
    Off,
}

impl ProgressMode {
    /// A bar when stderr is a terminal, else a log line every 10 s.
    pub fn detect() -> ProgressMode {
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            ProgressMode::Bar
        } else {
            ProgressMode::Log(Duration::from_secs(10))
        }
    }
}

/// A progress display for one batch.
pub struct ProgressDisplay {
    mode: ProgressMode,
    bar: Option<ProgressBar>,
    started: Instant,
    last_log: Instant,
    files: u64,
    bytes: u64,
}

impl ProgressDisplay {
    pub fn new(mode: ProgressMode) -> ProgressDisplay {
        let now = Instant::now();
        ProgressDisplay {
            mode,
            bar: None,
            started: now,
            last_log: now,
            files: 0,
            bytes: 0,
        }
    }

    fn line(&self, done: &Totals) -> String {
        let elapsed = self.started.elapsed().as_secs_f64();
        let speed = if elapsed > 0.0 {
            done.audio_seconds / elapsed
        } else {
            0.0
        };
        format!(
            "{}/{} files, {:.2} h audio, {speed:.1}× real time, {} errors",
            done.files,
            self.files,
            done.audio_seconds / 3600.0,
            done.errors
        )
    }
}

impl Progress for ProgressDisplay {
    /// For a batch of `files` files holding `bytes` bytes.
    fn start(&mut self, files: u64, bytes: u64) {
        self.bar = (self.mode == ProgressMode::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(Some(bytes), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        let now = Instant::now();
        self.started = now;
        self.last_log = now;
        self.files = files;
        self.bytes = bytes;
    }

    /// Shows the totals so far.
    fn update(&mut self, done: &Totals) {
        let line = self.line(done);
        match (&self.bar, self.mode) {
            (Some(bar), _) => {
                bar.set_position(done.bytes);
                bar.set_message(line);
            }
            (None, ProgressMode::Log(every)) if self.last_log.elapsed() >= every => {
                self.last_log = Instant::now();
                let percent = if self.bytes == 0 {
                    100.0
                } else {
                    done.bytes as f64 * 100.0 / self.bytes as f64
                };
                let eta = eta(self.started.elapsed(), done.bytes, self.bytes).map_or_else(
                    || "?".to_string(),
                    |d| humantime::format_duration(d).to_string(),
                );
                tracing::info!("reprocess: {percent:.0}%, {line}, ETA {eta}");
            }
            _ => {}
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The time left at the rate so far (whole seconds), once something is done.
fn eta(elapsed: Duration, done: u64, total: u64) -> Option<Duration> {
    if done == 0 {
        return None;
    }
    let left = total.saturating_sub(done) as f64 * elapsed.as_secs_f64() / done as f64;
    Some(Duration::from_secs(left.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_from_bytes_so_far() {
        assert_eq!(eta(Duration::from_secs(10), 0, 100), None);
        assert_eq!(
            eta(Duration::from_secs(10), 25, 100),
            Some(Duration::from_secs(30))
        );
        assert_eq!(eta(Duration::from_secs(10), 100, 100), Some(Duration::ZERO));
    }
}
