//! What a state change asks the broker to announce, in order, once the batch is durable:
//! tasks to (re)announce on `tasks/blocked`, final tasks for outcomes and `tasks/resolved`,
//! and `task.*` events. The broker turns these into MQTT publishes; nothing here publishes.

use extbus_schema::tasks::{Task, TaskState};

/// Event type: a task was created blocked.
pub const TASK_BLOCKED: &str = "task.blocked";
/// Event type: a task ended resumed.
pub const TASK_RESUMED: &str = "task.resumed";
/// Event type: a task ended cancelled.
pub const TASK_CANCELLED: &str = "task.cancelled";
/// Event type: a task ended aborted.
pub const TASK_ABORTED: &str = "task.aborted";
/// Event type: a stage's deadline passed and its default action applied (followed by the
/// event of what that action led to).
pub const TASK_TIMED_OUT: &str = "task.timed-out";
/// Event type: a blocked task's deadline moved.
pub const TASK_EXTENDED: &str = "task.extended";
/// Event type: a stage resumed and the next stage began (the task is announced again).
pub const TASK_STAGE_ADVANCED: &str = "task.stage-advanced";

/// The event type of a task reaching `state` (`task.<state>`).
pub fn state_event(state: TaskState) -> &'static str {
    match state {
        TaskState::Blocked => TASK_BLOCKED,
        TaskState::Resumed => TASK_RESUMED,
        TaskState::Cancelled => TASK_CANCELLED,
        TaskState::Aborted => TASK_ABORTED,
    }
}

/// Announcements owed after a state change; empty when nothing changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effects {
    /// Announce on `extbus/tasks/blocked/<entity>/<operation>` (payload `Task::announcement`).
    pub blocked: Vec<Task>,
    /// Final tasks: `Task::outcome` to the submitter's outcomes and to `tasks/resolved/...`.
    pub resolved: Vec<Task>,
    /// Events `(type, task)` in the order they happened.
    pub events: Vec<(String, Task)>,
}

impl Effects {
    pub fn is_empty(&self) -> bool {
        self.blocked.is_empty() && self.resolved.is_empty() && self.events.is_empty()
    }

    /// Appends `other` after `self`.
    pub fn extend(&mut self, other: Effects) {
        self.blocked.extend(other.blocked);
        self.resolved.extend(other.resolved);
        self.events.extend(other.events);
    }

    pub(crate) fn event(&mut self, kind: &str, task: &Task) {
        self.events.push((kind.to_string(), task.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_events_follow_spec_names() {
        assert_eq!(state_event(TaskState::Aborted), "task.aborted");
        assert_eq!(state_event(TaskState::Resumed), "task.resumed");
        assert!(Effects::default().is_empty());
    }
}
