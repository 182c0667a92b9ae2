//! How a batch reports its progress: the writer calls a [`Progress`] with the running
//! [`Totals`] after each file. Showing them (a bar, log lines) is the caller's job.

/// Running totals of a batch, as progress shows them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    pub files: u64,
    pub bytes: u64,
    pub audio_seconds: f64,
    pub errors: u64,
}

/// Receives one batch's progress, on the thread that called
/// [`reprocess`](super::reprocess). Every method does nothing unless overridden.
pub trait Progress {
    /// The batch starts: `files` files to analyse, holding `bytes` bytes.
    fn start(&mut self, files: u64, bytes: u64) {
        let _ = (files, bytes);
    }
    /// A file is done; `done` are the totals so far.
    fn update(&mut self, done: &Totals) {
        let _ = done;
    }
    /// The batch has ended (finished or stopped by an error).
    fn finish(&mut self) {}
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
