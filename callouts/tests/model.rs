//! Property test: random submits, resolutions by stage members, operators and strangers,
//! extends, clock ticks (`due`), renotifies, retention purges and commits, run against a real
//! store and compared step by step with a small model of the protocol's state machine; indexes are
//! checked at commits.

mod common;

use std::collections::HashMap;

use common::{req, rule, Fx, T0};
use extbus_callouts::{Effects, Engine, Txn};
use extbus_schema::tasks::{DefaultAction, Task, TaskAction, TaskState};
use extbus_schema::{CommandError, ErrorCode};
use proptest::prelude::*;

const PRINCIPALS: [&str; 6] = ["a1", "a2", "b", "c", "operator", "stranger"];
const SUBMITTERS: [&str; 2] = ["p1", "p2"];
const OPS: [&str; 3] = ["vm.create", "vm.delete", "vm.none"];
/// Shorter than the timeouts so that waiting tasks are announced again before they time out.
const RENOTIFY: u64 = 700;

#[derive(Debug, Clone)]
enum Step {
    Submit {
        submitter: usize,
        req: u8,
        op: usize,
    },
    Resolve {
        task: usize,
        who: usize,
        action: TaskAction,
    },
    Extend {
        task: usize,
        who: usize,
        ms: u64,
    },
    Tick {
        advance: u64,
        limit: usize,
    },
    Renotify,
    /// Purges tasks that ended at least `age` ms ago, at most `limit`.
    Purge {
        age: u64,
        limit: usize,
    },
    Commit,
}

/// (principals, timeout, max, default) per stage, as the rules below must produce them.
type StageSpec = (Vec<&'static str>, u64, u64, DefaultAction);

fn fixture(d: [DefaultAction; 3]) -> (Fx, HashMap<&'static str, Vec<StageSpec>>) {
    let fx = Fx::with_renotify(
        vec![
            rule("vm.create", "a1", 50, 1_000, 4_000, d[0]),
            rule("vm.create", "a2", 50, 1_500, 3_000, d[2]),
            rule("vm.create", "b", 10, 2_000, 6_000, d[1]),
            rule("vm.delete", "c", 7, 800, 800, d[2]),
        ],
        RENOTIFY,
    );
    let mut stages = HashMap::new();
    stages.insert(
        "vm.create",
        vec![
            (vec!["a1", "a2"], 1_000, 3_000, d[0]),
            (vec!["b"], 2_000, 6_000, d[1]),
        ],
    );
    stages.insert("vm.delete", vec![(vec!["c"], 800, 800, d[2])]);
    (fx, stages)
}

#[derive(Debug, Clone)]
struct MTask {
    id: String,
    stages: Vec<StageSpec>,
    state: TaskState,
    stage: usize,
    deadline: Option<u64>,
    started: u64,
    renotify: Option<u64>,
    resolved_by: Option<String>,
    finished_at: Option<u64>,
    purged: bool,
}

impl MTask {
    fn start_stage(&mut self, now: u64) {
        let (_, timeout, max, _) = &self.stages[self.stage];
        self.started = now;
        self.deadline = Some(now + timeout.min(max));
        self.renotify = Some(now + RENOTIFY);
    }
    fn finish(&mut self, state: TaskState, by: &str, now: u64) {
        self.finished_at = Some(now);
        self.state = state;
        self.resolved_by = Some(by.to_string());
        self.deadline = None;
        self.renotify = None;
    }
    /// Returns true when the task ended.
    fn pass(&mut self, by: &str, now: u64) -> bool {
        if self.stage + 1 < self.stages.len() {
            self.stage += 1;
            self.start_stage(now);
            false
        } else {
            self.finish(TaskState::Resumed, by, now);
            true
        }
    }
    fn in_stage(&self, s: usize, who: &str) -> bool {
        self.stages[s].0.contains(&who)
    }
    fn in_earlier(&self, who: &str) -> bool {
        (0..self.stage).any(|s| self.in_stage(s, who))
    }
    fn in_any(&self, who: &str) -> bool {
        (0..self.stages.len()).any(|s| self.in_stage(s, who))
    }
}

/// What the model expects of a command: an error code, or success with/without a change.
#[derive(Debug, PartialEq)]
enum Expect {
    Err(ErrorCode),
    Unchanged,
    Advanced,
    Ended,
}

fn outcome(r: &Result<(Task, Effects), CommandError>) -> Expect {
    match r {
        Err(e) => Expect::Err(e.code),
        Ok((_, fx)) if fx.is_empty() => Expect::Unchanged,
        Ok((_, fx)) if !fx.resolved.is_empty() => Expect::Ended,
        Ok(_) => Expect::Advanced,
    }
}

struct Run {
    stages: HashMap<&'static str, Vec<StageSpec>>,
    now: u64,
    tasks: Vec<MTask>,
    by_req: HashMap<(usize, u8), usize>,
}

impl Run {
    fn pick(&self, i: usize) -> Option<usize> {
        (!self.tasks.is_empty()).then(|| i % self.tasks.len())
    }

    fn step(&mut self, engine: &Engine, txn: &mut Txn, step: &Step) {
        let now = self.now;
        match *step {
            Step::Submit {
                submitter,
                req: r,
                op,
            } => {
                let got = engine
                    .submit(
                        txn,
                        SUBMITTERS[submitter],
                        req(&format!("r{r}"), OPS[op]),
                        now,
                    )
                    .unwrap();
                if let Some(&i) = self.by_req.get(&(submitter, r)) {
                    assert_eq!(got.0.id, self.tasks[i].id);
                    assert!(got.1.is_empty());
                } else if let Some(stages) = self.stages.get(OPS[op]) {
                    assert_eq!(got.0.state, TaskState::Blocked);
                    assert_eq!(got.1.blocked.len(), 1);
                    let mut t = MTask {
                        id: got.0.id.clone(),
                        stages: stages.clone(),
                        state: TaskState::Blocked,
                        stage: 0,
                        deadline: None,
                        started: now,
                        renotify: None,
                        resolved_by: None,
                        finished_at: None,
                        purged: false,
                    };
                    t.start_stage(now);
                    self.by_req.insert((submitter, r), self.tasks.len());
                    self.tasks.push(t);
                } else {
                    assert_eq!(got.0.state, TaskState::Resumed);
                    assert!(got.1.is_empty());
                    assert_eq!(txn.task(&got.0.id).unwrap(), None);
                }
            }
            Step::Resolve { task, who, action } => {
                let who = PRINCIPALS[who];
                let privileged = who == "operator";
                let Some(i) = self.pick(task) else {
                    let r =
                        engine.resolve(txn, who, privileged, "missing", action, None, None, now);
                    assert_eq!(outcome(&r), Expect::Err(ErrorCode::NotFound));
                    return;
                };
                let id = self.tasks[i].id.clone();
                let r = engine.resolve(txn, who, privileged, &id, action, None, None, now);
                let t = &mut self.tasks[i];
                if t.purged {
                    assert_eq!(outcome(&r), Expect::Err(ErrorCode::NotFound));
                    return;
                }
                let target = match action {
                    TaskAction::Resume => TaskState::Resumed,
                    TaskAction::Cancel => TaskState::Cancelled,
                    _ => TaskState::Aborted,
                };
                let resume = action == TaskAction::Resume;
                let expect = if t.state.is_final() {
                    if !privileged && !t.in_any(who) {
                        Expect::Err(ErrorCode::Forbidden)
                    } else if t.state == target || (resume && t.in_earlier(who)) {
                        Expect::Unchanged
                    } else {
                        Expect::Err(ErrorCode::Conflict)
                    }
                } else if !privileged && !t.in_stage(t.stage, who) {
                    if resume && t.in_earlier(who) {
                        Expect::Unchanged
                    } else {
                        Expect::Err(ErrorCode::Forbidden)
                    }
                } else if resume {
                    if t.pass(who, now) {
                        Expect::Ended
                    } else {
                        Expect::Advanced
                    }
                } else {
                    t.finish(target, who, now);
                    Expect::Ended
                };
                assert_eq!(outcome(&r), expect, "{action:?} by {who}");
            }
            Step::Extend { task, who, ms } => {
                let who = PRINCIPALS[who];
                let privileged = who == "operator";
                let Some(i) = self.pick(task) else { return };
                let id = self.tasks[i].id.clone();
                let r = engine.extend(txn, who, privileged, &id, ms, None, now);
                let t = &mut self.tasks[i];
                let expect = if t.purged {
                    Expect::Err(ErrorCode::NotFound)
                } else if t.state.is_final() {
                    if !privileged && !t.in_any(who) {
                        Expect::Err(ErrorCode::Forbidden)
                    } else {
                        Expect::Err(ErrorCode::Conflict)
                    }
                } else if !privileged && !t.in_stage(t.stage, who) {
                    Expect::Err(ErrorCode::Forbidden)
                } else {
                    t.deadline = Some((now + ms).min(t.started + t.stages[t.stage].2));
                    Expect::Advanced
                };
                assert_eq!(outcome(&r), expect, "extend by {who}");
            }
            Step::Tick { advance, limit } => {
                self.now += advance;
                let now = self.now;
                let mut due: Vec<(u64, String, usize)> = (self.tasks.iter().enumerate())
                    .filter_map(|(i, t)| {
                        t.deadline
                            .filter(|d| *d <= now)
                            .map(|d| (d, t.id.clone(), i))
                    })
                    .collect();
                due.sort();
                due.truncate(limit);
                let got = engine.due(txn, now, limit).unwrap();
                let got_ids: Vec<String> = got.iter().map(|e| e.events[0].1.id.clone()).collect();
                let want_ids: Vec<String> = due.iter().map(|d| d.1.clone()).collect();
                assert_eq!(got_ids, want_ids);
                for (_, _, i) in due {
                    let t = &mut self.tasks[i];
                    match t.stages[t.stage].3 {
                        DefaultAction::Resume => {
                            t.pass("timeout", now);
                        }
                        a => t.finish(a.final_state(), "timeout", now),
                    }
                }
            }
            Step::Renotify => {
                let mut due: Vec<(u64, String, usize)> = (self.tasks.iter().enumerate())
                    .filter_map(|(i, t)| {
                        t.renotify
                            .filter(|n| *n <= now)
                            .map(|n| (n, t.id.clone(), i))
                    })
                    .collect();
                due.sort();
                let got = engine.renotify_due(txn, now, 1000).unwrap();
                let got_ids: Vec<String> = got.iter().map(|t| t.id.clone()).collect();
                assert_eq!(got_ids, due.iter().map(|d| d.1.clone()).collect::<Vec<_>>());
                for (_, _, i) in due {
                    self.tasks[i].renotify = Some(now + RENOTIFY);
                }
            }
            Step::Purge { age, limit } => {
                let cutoff = now.saturating_sub(age);
                let mut due: Vec<(u64, String, usize)> = (self.tasks.iter().enumerate())
                    .filter(|(_, t)| !t.purged)
                    .filter_map(|(i, t)| {
                        t.finished_at
                            .filter(|f| *f <= cutoff)
                            .map(|f| (f, t.id.clone(), i))
                    })
                    .collect();
                due.sort();
                due.truncate(limit);
                let got = engine.purge_finished(txn, cutoff, limit).unwrap();
                assert_eq!(got, due.iter().map(|d| d.1.clone()).collect::<Vec<_>>());
                for (_, _, i) in due {
                    self.tasks[i].purged = true;
                    // The request id is free again: the same submit makes a new task.
                    self.by_req.retain(|_, v| *v != i);
                }
            }
            Step::Commit => {}
        }
    }

    /// The engine's view (through `txn`) equals the model.
    fn compare(&self, txn: &Txn) {
        for m in &self.tasks {
            if m.purged {
                assert_eq!(txn.task(&m.id).unwrap(), None, "purged task {}", m.id);
                continue;
            }
            let t = txn.task(&m.id).unwrap().expect("stored");
            assert_eq!(
                (t.state, t.stage, t.deadline, t.resolved_by.clone()),
                (m.state, m.stage, m.deadline, m.resolved_by.clone()),
                "task {}",
                m.id
            );
        }
    }

    /// Committed indexes agree with the model and with the tasks.
    fn check_store(&self, fx: &Fx) {
        fx.assert_consistent();
        for m in self.tasks.iter().filter(|m| !m.purged) {
            let idx = fx.store.index_entries(&m.id).unwrap();
            if m.state.is_final() {
                assert!(idx.deadlines.is_empty() && idx.renotify.is_empty() && !idx.blocked);
            } else {
                assert_eq!(idx.deadlines, m.deadline.into_iter().collect::<Vec<_>>());
                assert_eq!(idx.renotify, m.renotify.into_iter().collect::<Vec<_>>());
                assert!(idx.blocked);
            }
        }
    }
}

fn default_action() -> impl Strategy<Value = DefaultAction> {
    prop_oneof![
        Just(DefaultAction::Resume),
        Just(DefaultAction::Cancel),
        Just(DefaultAction::Abort)
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let action = prop_oneof![
        Just(TaskAction::Resume),
        Just(TaskAction::Cancel),
        Just(TaskAction::Abort)
    ];
    prop_oneof![
        3 => (0..2usize, 0..4u8, 0..3usize).prop_map(|(submitter, req, op)| Step::Submit { submitter, req, op }),
        5 => (any::<usize>(), 0..6usize, action).prop_map(|(task, who, action)| Step::Resolve { task, who, action }),
        2 => (any::<usize>(), 0..6usize, 0..5_000u64).prop_map(|(task, who, ms)| Step::Extend { task, who, ms }),
        3 => (0..1_500u64, 1..4usize).prop_map(|(advance, limit)| Step::Tick { advance, limit }),
        1 => Just(Step::Renotify),
        1 => (0..3_000u64, 1..4usize).prop_map(|(age, limit)| Step::Purge { age, limit }),
        2 => Just(Step::Commit),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn engine_matches_the_model(
        d in (default_action(), default_action(), default_action()),
        steps in prop::collection::vec(step(), 1..64),
    ) {
        let (fx, stages) = fixture([d.0, d.1, d.2]);
        let mut run = Run { stages, now: T0, tasks: Vec::new(), by_req: HashMap::new() };
        let mut txn = fx.store.txn();
        for s in &steps {
            run.step(&fx.engine, &mut txn, s);
            run.compare(&txn);
            if matches!(s, Step::Commit) {
                std::mem::replace(&mut txn, fx.store.txn()).commit().unwrap();
                fx.store.flush().unwrap();
                run.check_store(&fx);
                run.compare(&txn);
            }
        }
        txn.commit().unwrap();
        fx.store.flush().unwrap();
        run.check_store(&fx);
    }
}
