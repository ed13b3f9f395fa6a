//! The link between the coordinator and the in-process extensions (exec): the commands they
//! send and where blocked tasks go for them. Neutral ground, so neither side imports the other.

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
}
