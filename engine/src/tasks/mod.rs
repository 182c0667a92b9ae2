//! The six tasks of acoupi (its documentation, Reference → Tasks:
//! <https://acoupi.github.io/acoupi/>), with the same call orders, branches and return values. Each
//! task is synchronous and is run by the runtime on a blocking thread. A component error inside a
//! task is logged with the stage and component names and the task's documented fallback applies; it
//! never propagates to the scheduler.

mod detection;
mod heartbeat;
mod management;
mod messaging;
mod recording;
mod summary;

use std::sync::Arc;

pub use detection::{DetectionReport, DetectionTask};
pub use heartbeat::{HeartbeatReport, HeartbeatTask, heartbeat_payload};
pub use management::{ManagementReport, ManagementTask, move_file};
pub use messaging::{MessagingReport, MessagingTask};
pub use recording::RecordingTask;
pub use summary::SummaryTask;

/// A component with its instance name, for log lines.
pub struct Named<T: ?Sized> {
    pub name: String,
    pub component: Arc<T>,
}

impl<T: ?Sized> Named<T> {
    pub fn new(name: impl Into<String>, component: Arc<T>) -> Self {
        Named {
            name: name.into(),
            component,
        }
    }
}

impl<T: ?Sized> Clone for Named<T> {
    fn clone(&self) -> Self {
        Named {
            name: self.name.clone(),
            component: self.component.clone(),
        }
    }
}

impl<T: ?Sized> std::ops::Deref for Named<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.component
    }
}

#[cfg(test)]
pub(crate) mod testing;
