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
    /// Before the batch starts: `in_shard` files are this shard's, `skipped` of them
    /// were done by an earlier run.
    fn selected(&mut self, in_shard: u64, skipped: u64) {
        let _ = (in_shard, skipped);
    }
    /// The batch starts: `files` files to analyse, holding `bytes` bytes.
    fn start(&mut self, files: u64, bytes: u64) {
        let _ = (files, bytes);
    }
    /// A file is done; `done` are the totals so far.
    fn update(&mut self, done: &Totals) {
        let _ = done;
    }
    /// What the store holds now (`stored`: the files committed so far in this batch),
    /// after each commit and at least every second while the batch runs.
    fn committed(&mut self, stored: &Totals) {
        let _ = stored;
    }
    /// The batch has ended (finished or stopped by an error).
    fn finish(&mut self) {}
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
