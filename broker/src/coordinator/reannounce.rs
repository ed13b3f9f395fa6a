//! Re-announcing waiting tasks to an extension that began listening (it subscribed to their
//! notices, or resumed a stored session): every task whose current stage names it and whose
//! notice topic its filters match is published again. The blocked set is walked a page at a
//! time, one page per `STEP_MS`, so a million waiting tasks never land on the bus as one burst.

use super::{tasks, Batch, Coordinator};
use extbus_schema::tasks::{TaskQuery, TaskState};
use extbus_schema::topics;
use std::collections::VecDeque;

/// Blocked tasks looked at per step (and so at most announced per batch).
const PAGE: usize = 1000;
/// Time between two steps.
const STEP_MS: u64 = 20;

struct Walk {
    principal: String,
    filters: Vec<String>,
    after: Option<String>,
    announced: usize,
}

/// Extensions whose waiting tasks are being re-announced, oldest first.
#[derive(Default)]
pub(crate) struct Queue {
    walks: VecDeque<Walk>,
    next_at: u64,
}

impl Queue {
    /// Starts a walk for `principal` (a walk already queued for it starts over with the union
    /// of its filters: one pass serves both).
    pub fn listening(&mut self, principal: String, filters: Vec<String>) {
        let filters: Vec<String> = filters
            .into_iter()
            .map(|f| topics::split_shared(&f).1.to_string())
            .collect();
        if let Some(w) = self.walks.iter_mut().find(|w| w.principal == principal) {
            for f in filters {
                if !w.filters.contains(&f) {
                    w.filters.push(f);
                }
            }
            w.after = None;
            return;
        }
        self.walks.push_back(Walk {
            principal,
            filters,
            after: None,
            announced: 0,
        });
    }

    /// When the next step is due, if a walk is under way.
    pub fn wakeup(&self) -> Option<u64> {
        (!self.walks.is_empty()).then_some(self.next_at)
    }
}

/// One step of the oldest walk, if one is due.
pub(crate) fn step(co: &mut Coordinator, b: &mut Batch) {
    if co.reannounce.walks.is_empty() || b.now < co.reannounce.next_at {
        return;
    }
    co.reannounce.next_at = b.now + STEP_MS;
    let Some(mut w) = co.reannounce.walks.pop_front() else {
        return;
    };
    let q = TaskQuery {
        state: Some(TaskState::Blocked),
        limit: Some(PAGE),
        after: w.after.clone(),
        ..TaskQuery::default()
    };
    let page = match co.engine.query(&co.store, &q) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "re-announcing waiting tasks failed");
            return;
        }
    };
    for t in &page {
        let waits_on_it = t
            .stages
            .get(t.stage)
            .is_some_and(|s| s.contains(&w.principal));
        let topic = topics::tasks_blocked(&t.operation);
        if waits_on_it && w.filters.iter().any(|f| topics::filter_matches(f, &topic)) {
            tasks::announce_blocked(b, t);
            w.announced += 1;
        }
    }
    match page.last() {
        Some(last) if page.len() >= PAGE => {
            w.after = Some(last.id.clone());
            co.reannounce.walks.push_front(w);
        }
        _ => {
            if w.announced > 0 {
                tracing::debug!(principal = %w.principal, count = w.announced,
                    "waiting tasks announced again to a listening extension");
            }
        }
    }
}
