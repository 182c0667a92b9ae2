//! Showing a batch's progress: an `indicatif` bar on a terminal (files, audio hours,
//! throughput as a multiple of real time, ETA by bytes), or an `info` log line every
//! interval when the output is not a terminal (Slurm and Kubernetes logs); and
//! [`printable`], how a file name or reason is printed in a report.

use std::time::{Duration, Instant};

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

/// Running totals of a batch, as progress shows them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    pub files: u64,
    pub bytes: u64,
    pub audio_seconds: f64,
    pub errors: u64,
}

/// A progress display for one batch.
pub struct Progress {
    mode: ProgressMode,
    bar: Option<ProgressBar>,
    started: Instant,
    last_log: Instant,
    files: u64,
    bytes: u64,
}

impl Progress {
    /// For a batch of `files` files holding `bytes` bytes.
    pub fn new(mode: ProgressMode, files: u64, bytes: u64) -> Progress {
        let bar = (mode == ProgressMode::Bar).then(|| {
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
        Progress {
            mode,
            bar,
            started: now,
            last_log: now,
            files,
            bytes,
        }
    }

    /// Shows the totals so far.
    pub fn update(&mut self, done: &Totals) {
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

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
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

/// `text` with its control characters escaped, for a terminal or a report: a file named
/// with a newline or an ESC (`\x1b`, which starts terminal escape sequences) cannot
/// start a fake report line or drive the terminal. Newline, carriage return and tab are
/// shown as `\n`, `\r`, `\t`; other control characters (C0, DEL, C1) and the Unicode
/// bidirectional overrides (which reorder what is shown) as `\x1b` or `\u{202e}`.
/// For display only: it is not a quoting that can be read back.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let bidi = |c: char| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(|c| c.is_control() || bidi(c)) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() && u32::from(c) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", u32::from(c)))
            }
            c if c.is_control() || bidi(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
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
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(
            printable("site-1/20260601_050000.WAV"),
            "site-1/20260601_050000.WAV"
        );
        assert_eq!(
            printable("été/chant d’oiseau.wav"),
            "été/chant d’oiseau.wav"
        );
        assert_eq!(printable("a\nb\rc\td"), "a\\nb\\rc\\td");
        assert_eq!(printable("\x1b[2Jx\x7f\u{9b}y"), "\\x1b[2Jx\\x7f\\u{9b}y");
        assert_eq!(printable("gpj.\u{202e}wav"), "gpj.\\u{202e}wav");
    }

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
