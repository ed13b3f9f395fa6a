//! `Txn`: the writes of one batch, over every named tree of the store (`TreeId`). An overlay
//! per tree in front of the committed data lets later commands of the batch read earlier
//! writes; `commit` applies everything as ONE sled transaction over the trees written, so a
//! batch's tasks, events and services are recovered together or not at all. It does not
//! flush: the caller flushes the store once per batch (group commit).

use std::collections::BTreeMap;
use std::iter::Peekable;
use std::ops::Bound;

use extbus_schema::tasks::Task;
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use crate::error::CalloutError;
use crate::keys;
use crate::record::Stored;
use crate::trees::{TreeId, Trees, TREE_COUNT};

/// Key-value pairs in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// One pending write.
#[derive(Debug, Clone)]
enum Write {
    Put(Vec<u8>),
    /// A put that requires the key to be absent from the committed tree at commit.
    PutNew(Vec<u8>),
    Remove,
}

impl Write {
    fn value(&self) -> Option<&[u8]> {
        match self {
            Write::Put(v) | Write::PutNew(v) => Some(v),
            Write::Remove => None,
        }
    }
}

type Overlay = BTreeMap<Vec<u8>, Write>;

/// Pending writes over a snapshot-free view of the trees: reads see each tree as committed
/// plus this batch's own writes to it. Dropping a `Txn` without `commit` discards its writes.
pub struct Txn {
    trees: Trees,
    overlay: [Overlay; TREE_COUNT],
}

impl Txn {
    pub fn new(trees: Trees) -> Txn {
        Txn {
            trees,
            overlay: Default::default(),
        }
    }

    /// True when nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.overlay.iter().all(|o| o.is_empty())
    }

    /// The number of keys written or removed, over all trees.
    pub fn len(&self) -> usize {
        self.overlay.iter().map(|o| o.len()).sum()
    }

    /// Applies every write as one sled transaction over the trees written; true when there
    /// was anything to write. Fails, writing nothing, when a key put with `insert_new` is
    /// already committed. Durable only after `Store::flush`.
    pub fn commit(self) -> Result<bool, CalloutError> {
        let written: Vec<TreeId> = TreeId::ALL
            .into_iter()
            .filter(|id| !self.overlay[id.index()].is_empty())
            .collect();
        if written.is_empty() {
            return Ok(false);
        }
        let trees: Vec<sled::Tree> = written
            .iter()
            .map(|id| self.trees.tree(*id).clone())
            .collect();
        let overlay = &self.overlay;
        let result = trees.as_slice().transaction(|views| {
            for (view, id) in views.iter().zip(&written) {
                for (k, w) in &overlay[id.index()] {
                    match w {
                        Write::Put(v) => {
                            view.insert(k.as_slice(), v.as_slice())?;
                        }
                        Write::PutNew(v) => {
                            if view.insert(k.as_slice(), v.as_slice())?.is_some() {
                                return Err(ConflictableTransactionError::Abort(
                                    CalloutError::Conflict {
                                        tree: id.name(),
                                        key: k.escape_ascii().to_string(),
                                    },
                                ));
                            }
                        }
                        Write::Remove => {
                            view.remove(k.as_slice())?;
                        }
                    }
                }
            }
            Ok(())
        });
        match result {
            Ok(()) => Ok(true),
            Err(sled::transaction::TransactionError::Abort(e)) => Err(e),
            Err(sled::transaction::TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    /// A value of `tree` as this batch sees it.
    pub fn get(&self, tree: TreeId, key: &[u8]) -> Result<Option<Vec<u8>>, CalloutError> {
        if let Some(w) = self.overlay[tree.index()].get(key) {
            return Ok(w.value().map(<[u8]>::to_vec));
        }
        Ok(self.trees.tree(tree).get(key)?.map(|v| v.to_vec()))
    }

    /// Sets `key` in `tree` when the batch commits.
    pub fn insert(&mut self, tree: TreeId, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.overlay[tree.index()].insert(key.into(), Write::Put(value.into()));
    }

    /// Sets `key` in `tree` when the batch commits, which must not find it there already:
    /// for keys that are never reused (event seqs). Otherwise the whole batch fails.
    pub fn insert_new(&mut self, tree: TreeId, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.overlay[tree.index()].insert(key.into(), Write::PutNew(value.into()));
    }

    /// Removes `key` from `tree` when the batch commits.
    pub fn remove(&mut self, tree: TreeId, key: impl Into<Vec<u8>>) {
        self.overlay[tree.index()].insert(key.into(), Write::Remove);
    }

    /// The live entries of `tree` with `start <= key < end`, in key order, merging the tree
    /// with this batch's writes (a removal here hides the tree's entry). Lazy.
    pub fn iter_range<'a>(&'a self, tree: TreeId, start: &[u8], end: &[u8]) -> Merged<'a> {
        let over = self.overlay[tree.index()]
            .range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))
            .peekable();
        Merged {
            tree: self.trees.tree(tree).range(start..end).peekable(),
            over,
        }
    }

    /// Up to `limit` live entries of `tree` with `start <= key < end`, in key order.
    pub fn range(
        &self,
        tree: TreeId,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Entries, CalloutError> {
        self.iter_range(tree, start, end).take(limit).collect()
    }

    /// Up to `limit` live entries of `tree` whose key starts with `prefix`.
    pub fn scan_prefix(
        &self,
        tree: TreeId,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Entries, CalloutError> {
        self.range(tree, prefix, &keys::prefix_end(prefix), limit)
    }

    /// A task as this batch sees it.
    pub fn task(&self, id: &str) -> Result<Option<Task>, CalloutError> {
        Ok(self.stored(id)?.map(|s| s.task))
    }

    pub(crate) fn stored(&self, id: &str) -> Result<Option<Stored>, CalloutError> {
        let key = keys::task(id);
        match self.get(TreeId::Callouts, &key)? {
            Some(bytes) => Stored::decode(&key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    pub(crate) fn put_stored(&mut self, s: &Stored) -> Result<(), CalloutError> {
        let bytes = s.encode()?;
        self.insert(TreeId::Callouts, keys::task(&s.task.id), bytes);
        if let Some(at) = s.finished_at {
            self.insert(TreeId::Callouts, keys::finished(at, &s.task.id), Vec::new());
        }
        Ok(())
    }
}

/// A tree's committed entries merged with a batch's writes, in key order (`Txn::iter_range`).
pub struct Merged<'a> {
    tree: Peekable<sled::Iter>,
    over: Peekable<std::collections::btree_map::Range<'a, Vec<u8>, Write>>,
}

impl Iterator for Merged<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>), CalloutError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let tree_key = match self.tree.peek() {
                Some(Ok((k, _))) => Some(k.clone()),
                Some(Err(_)) => match self.tree.next() {
                    Some(Err(e)) => return Some(Err(e.into())),
                    _ => None,
                },
                None => None,
            };
            let over_key = self.over.peek().map(|(k, _)| k.as_slice());
            let take_tree = match (&tree_key, over_key) {
                (None, None) => return None,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(t), Some(o)) => {
                    if t.as_ref() == o {
                        self.tree.next(); // shadowed by this batch's write
                        false
                    } else {
                        t.as_ref() < o
                    }
                }
            };
            if take_tree {
                return self.tree.next().map(|item| {
                    item.map(|(k, v)| (k.to_vec(), v.to_vec()))
                        .map_err(CalloutError::from)
                });
            }
            match self.over.next() {
                Some((k, w)) => {
                    if let Some(v) = w.value() {
                        return Some(Ok((k.clone(), v.to_vec())));
                    } // a removal: nothing to yield, look further
                }
                None => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: TreeId = TreeId::Callouts;

    fn trees() -> (tempfile::TempDir, Trees) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        (dir, Trees::open(&db).unwrap())
    }

    #[test]
    fn reads_see_own_writes_and_commit_is_atomic() {
        let (_dir, trees) = trees();
        let tree = trees.tree(T).clone();
        tree.insert(b"x/1", b"a".to_vec()).unwrap();
        tree.insert(b"x/3", b"c".to_vec()).unwrap();
        let mut txn = Txn::new(trees.clone());
        txn.insert(T, b"x/2".to_vec(), b"b".to_vec());
        txn.remove(T, b"x/3".to_vec());
        txn.insert(T, b"x/1".to_vec(), b"A".to_vec());
        assert_eq!(txn.get(T, b"x/3").unwrap(), None);
        let all = txn.scan_prefix(T, b"x/", usize::MAX).unwrap();
        assert_eq!(
            all,
            vec![
                (b"x/1".to_vec(), b"A".to_vec()),
                (b"x/2".to_vec(), b"b".to_vec())
            ]
        );
        assert_eq!(txn.scan_prefix(T, b"x/", 1).unwrap().len(), 1);
        assert_eq!(
            tree.get(b"x/2").unwrap(),
            None,
            "nothing applied before commit"
        );
        txn.commit().unwrap();
        assert_eq!(tree.get(b"x/2").unwrap().unwrap().as_ref(), b"b");
        assert_eq!(tree.get(b"x/3").unwrap(), None);
    }

    #[test]
    fn dropped_txn_writes_nothing() {
        let (_dir, trees) = trees();
        let mut txn = Txn::new(trees.clone());
        txn.insert(T, b"k".to_vec(), b"v".to_vec());
        assert_eq!(txn.len(), 1);
        drop(txn);
        assert!(trees.tree(T).is_empty());
    }

    #[test]
    fn each_tree_has_its_own_overlay_and_one_commit_writes_them_all() {
        let (_dir, trees) = trees();
        let mut txn = Txn::new(trees.clone());
        txn.insert(TreeId::Events, b"k".to_vec(), b"event".to_vec());
        txn.insert(TreeId::Services, b"k".to_vec(), b"service".to_vec());
        assert_eq!(txn.get(T, b"k").unwrap(), None);
        assert_eq!(
            txn.get(TreeId::Events, b"k").unwrap().as_deref(),
            Some(&b"event"[..])
        );
        assert!(txn.commit().unwrap());
        assert_eq!(
            trees
                .tree(TreeId::Services)
                .get(b"k")
                .unwrap()
                .unwrap()
                .as_ref(),
            b"service"
        );
        assert!(trees.tree(T).is_empty());
        assert!(!Txn::new(trees).commit().unwrap(), "nothing to write");
    }

    #[test]
    fn a_committed_key_put_as_new_fails_the_whole_batch() {
        let (_dir, trees) = trees();
        trees.tree(TreeId::Events).insert(b"seq", b"old").unwrap();
        let mut txn = Txn::new(trees.clone());
        txn.insert(T, b"task".to_vec(), b"t".to_vec());
        txn.insert_new(TreeId::Events, b"seq".to_vec(), b"new".to_vec());
        let err = txn.commit().unwrap_err();
        assert!(
            matches!(&err, CalloutError::Conflict { tree: "events", .. }),
            "{err}"
        );
        assert!(trees.tree(T).is_empty(), "the other tree's write is undone");
        assert_eq!(
            trees
                .tree(TreeId::Events)
                .get(b"seq")
                .unwrap()
                .unwrap()
                .as_ref(),
            b"old"
        );
    }
}
