//! `Store`: the tasks, their indexes and registered rules, kept in the `callouts` tree of the
//! store's named `Trees`. Hands out `Txn`s over all the trees, flushes (group commit), and
//! serves reads of committed tasks (get, query, next wake-up) outside the single writer.

use std::ops::Bound;
use std::path::Path;

use extbus_schema::tasks::{Task, TaskQuery, TaskState};

use crate::error::CalloutError;
use crate::keys;
use crate::record::Stored;
use crate::trees::{TreeId, Trees};
use crate::txn::Txn;

/// Name of the tasks' tree inside the sled database.
pub const TREE_NAME: &str = TreeId::Callouts.name();
/// Page size of `query` when none is asked for.
pub const DEFAULT_QUERY_LIMIT: usize = 100;
/// Largest page `query` returns.
pub const MAX_QUERY_LIMIT: usize = 1000;

/// Handle to the store's trees, read as tasks. Cheap to clone; clones share the database.
#[derive(Clone)]
pub struct Store {
    trees: Trees,
    tree: sled::Tree,
}

/// The index entries that point at one task (for checks and diagnostics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexEntries {
    pub deadlines: Vec<u64>,
    pub renotify: Vec<u64>,
    pub blocked: bool,
}

impl Store {
    /// Opens (or creates) a sled database at `path` with default settings.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, CalloutError> {
        let db = sled::open(path)?;
        Store::open_db(&db)
    }

    /// Uses the trees of a database the caller already opened (and configured).
    pub fn open_db(db: &sled::Db) -> Result<Store, CalloutError> {
        Ok(Store::with_trees(Trees::open(db)?))
    }

    /// Uses trees the caller already opened (and shares with the event log).
    pub fn with_trees(trees: Trees) -> Store {
        let tree = trees.tree(TreeId::Callouts).clone();
        Store { trees, tree }
    }

    /// Every named tree of the store.
    pub fn trees(&self) -> &Trees {
        &self.trees
    }

    /// Makes every committed `Txn` durable. Call once per batch, before acknowledging it.
    pub fn flush(&self) -> Result<(), CalloutError> {
        self.trees.db().flush()?;
        Ok(())
    }

    /// Starts a batch of writes over every tree.
    pub fn txn(&self) -> Txn {
        Txn::new(self.trees.clone())
    }

    /// Bytes the whole database (not only the tasks) occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64, CalloutError> {
        Ok(self.trees.db().size_on_disk()?)
    }

    pub(crate) fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    /// A committed task.
    pub fn get(&self, id: &str) -> Result<Option<Task>, CalloutError> {
        let key = keys::task(id);
        match self.tree.get(&key)? {
            Some(v) => Ok(Some(Stored::decode(&key, &v)?.task)),
            None => Ok(None),
        }
    }

    /// Committed tasks matching the filters, ordered by id (creation order), starting after
    /// `after`. Asking for `state: blocked` walks only the blocked set.
    pub fn query(&self, q: &TaskQuery) -> Result<Vec<Task>, CalloutError> {
        let limit = match q.limit {
            None | Some(0) => DEFAULT_QUERY_LIMIT,
            Some(n) => n.min(MAX_QUERY_LIMIT),
        };
        let via_blocked = q.state == Some(TaskState::Blocked);
        let prefix = if via_blocked {
            keys::BLOCKED
        } else {
            keys::TASK
        };
        let start = match &q.after {
            Some(after) => {
                let mut k = prefix.to_vec();
                k.extend_from_slice(after.as_bytes());
                Bound::Excluded(k)
            }
            None => Bound::Included(prefix.to_vec()),
        };
        let end = Bound::Excluded(keys::prefix_end(prefix));
        let mut out = Vec::new();
        for item in self.tree.range((start, end)) {
            let (k, v) = item?;
            let task = if via_blocked {
                match self.get(&keys::suffix(&k)?)? {
                    Some(t) => t,
                    None => continue,
                }
            } else {
                Stored::decode(&k, &v)?.task
            };
            let wanted = q.state.is_none_or(|s| s == task.state)
                && q.operation.as_ref().is_none_or(|o| *o == task.operation)
                && q.org.as_ref().is_none_or(|o| *o == task.org);
            if wanted {
                out.push(task);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// The earliest committed deadline or renotify time, if any task is blocked: when the
    /// coordinator should next call `due` / `renotify_due`.
    pub fn next_wakeup(&self) -> Result<Option<u64>, CalloutError> {
        let mut next: Option<u64> = None;
        for prefix in [keys::DEADLINE, keys::RENOTIFY] {
            if let Some(item) = self.tree.scan_prefix(prefix).next() {
                let (k, _) = item?;
                let (at, _) = keys::split_timed(&k)?;
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        Ok(next)
    }

    /// Every index entry that points at `id`. Walks the whole timer indexes: for checks only.
    pub fn index_entries(&self, id: &str) -> Result<IndexEntries, CalloutError> {
        let mut out = IndexEntries {
            blocked: self.tree.contains_key(keys::blocked(id))?,
            ..IndexEntries::default()
        };
        for (prefix, list) in [
            (keys::DEADLINE, &mut out.deadlines),
            (keys::RENOTIFY, &mut out.renotify),
        ] {
            for item in self.tree.scan_prefix(prefix) {
                let (k, _) = item?;
                let (at, task_id) = keys::split_timed(&k)?;
                if task_id == id {
                    list.push(at);
                }
            }
        }
        Ok(out)
    }

    /// Checks that every task and every index entry agree; returns one line per problem.
    /// Reads everything: for tests and offline checks, not for the hot path.
    pub fn verify(&self) -> Result<Vec<String>, CalloutError> {
        crate::verify::verify(&self.tree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_store_has_nothing_due_and_finds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.next_wakeup().unwrap(), None);
        assert_eq!(store.get("nope").unwrap(), None);
        assert!(store.query(&TaskQuery::default()).unwrap().is_empty());
        assert!(store.verify().unwrap().is_empty());
        store.flush().unwrap();
        assert!(store.size_on_disk().unwrap() > 0);
    }

    #[test]
    fn corrupt_task_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .tree
            .insert(keys::task("x"), b"garbage".to_vec())
            .unwrap();
        assert!(matches!(store.get("x"), Err(CalloutError::Corrupt { .. })));
        assert!(store.query(&TaskQuery::default()).is_err());
        store.tree.insert(b"d/short", b"".to_vec()).unwrap();
        assert!(store.next_wakeup().is_err());
    }
}
