//! The link between the coordinator and the in-process extensions (exec): the commands they
//! send, where blocked tasks go for them and their readiness. Neutral ground, so neither side
//! imports the other.

use crate::principals::Principal;
use extbus_schema::tasks::Task;
use extbus_schema::CommandError;
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// The answer to an internal command.
pub type InternalReply = oneshot::Sender<Answer>;
/// What an internal command gets back: the reply's result or its error.
pub type Answer = Result<Value, CommandError>;

/// One command: who sends it, the inbox suffix (`tasks/<id>/resume`), its JSON body.
pub struct InternalCommand {
    pub principal: Principal,
    pub suffix: String,
    pub body: Value,
    pub reply: InternalReply,
}

/// An in-process extension that answers its actions (exec runs a program). `run` must not
/// block: it starts the work and later sends `actions/responses` as `owner` on the link.
pub trait LocalActions: Send + Sync {
    fn owner(&self) -> &str;
    fn run(
        &self,
        request: extbus_schema::actions::ActionRequest,
        spec: extbus_schema::actions::ActionSpec,
    );
}

/// The in-process extensions in service now, as the coordinator sees them: looked up on
/// each use, swapped by a reload.
pub trait InProcess: Send + Sync {
    /// The one that answers `owner`'s actions, if `owner` is in service and has some.
    fn actions(&self, owner: &str) -> Option<Arc<dyn LocalActions>>;
    /// Takes the `[[exec]]` entries of a reloaded (valid) configuration.
    fn reconfigure(&self, entries: &[crate::config::ExecConfig]);
}

/// The coordinator's end of the link with the in-process extensions.
pub struct Link {
    pub commands: mpsc::Receiver<InternalCommand>,
    /// Blocked tasks as announced (after each flush), and the blocked ones found at start.
    pub blocked: mpsc::UnboundedSender<Task>,
    /// The in-process extensions in service.
    pub local: Arc<dyn InProcess>,
    /// Whether each executable can run, as last checked.
    pub readiness: std::sync::Arc<Readiness>,
}

/// One executable extension's readiness as last checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecReady {
    pub path: String,
    /// `None` while ready, else why it cannot run.
    pub reason: Option<String>,
    /// When it was last checked (ms, on the broker's clock).
    pub checked_at: u64,
}

/// Readiness of every `[[exec]]` entry by name: written by the periodic checks, read by
/// `registrations/query`.
#[derive(Debug, Default)]
pub struct Readiness(std::sync::RwLock<std::collections::HashMap<String, ExecReady>>);

impl Readiness {
    pub fn set(&self, name: &str, state: ExecReady) {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), state);
    }

    /// Forgets a removed entry.
    pub fn remove(&self, name: &str) {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    pub fn get(&self, name: &str) -> Option<ExecReady> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }
}
