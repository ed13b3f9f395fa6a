//! `Txn`: the writes of one batch of commands. An overlay in front of the tree lets later
//! commands of the batch read earlier writes; `commit` applies everything as ONE atomic sled
//! batch. It does not flush: the caller flushes the store once per batch (group commit).

use std::collections::BTreeMap;
use std::ops::Bound;

use extbus_schema::tasks::Task;

use crate::error::CalloutError;
use crate::keys;
use crate::record::Stored;

/// Key-value pairs in key order.
pub(crate) type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Pending writes over a snapshot-free view of the tree: reads see the tree as committed plus
/// this batch's own writes. Dropping a `Txn` without `commit` discards its writes.
pub struct Txn {
    tree: sled::Tree,
    overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Txn {
    pub(crate) fn new(tree: sled::Tree) -> Txn {
        Txn {
            tree,
            overlay: BTreeMap::new(),
        }
    }

    /// True when nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.overlay.is_empty()
    }

    /// The number of keys written or removed.
    pub fn len(&self) -> usize {
        self.overlay.len()
    }

    /// Applies every write as one atomic batch; true when there was anything to write.
    /// Durable only after `Store::flush`.
    pub fn commit(self) -> Result<bool, CalloutError> {
        if self.overlay.is_empty() {
            return Ok(false);
        }
        let mut batch = sled::Batch::default();
        for (k, v) in self.overlay {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        self.tree.apply_batch(batch)?;
        Ok(true)
    }

    /// A task as this batch sees it.
    pub fn task(&self, id: &str) -> Result<Option<Task>, CalloutError> {
        Ok(self.stored(id)?.map(|s| s.task))
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, CalloutError> {
        if let Some(v) = self.overlay.get(key) {
            return Ok(v.clone());
        }
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    pub(crate) fn insert(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.overlay.insert(key, Some(value));
    }

    pub(crate) fn remove(&mut self, key: Vec<u8>) {
        self.overlay.insert(key, None);
    }

    pub(crate) fn stored(&self, id: &str) -> Result<Option<Stored>, CalloutError> {
        let key = keys::task(id);
        match self.get(&key)? {
            Some(bytes) => Stored::decode(&key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    pub(crate) fn put_stored(&mut self, s: &Stored) -> Result<(), CalloutError> {
        let bytes = s.encode()?;
        self.insert(keys::task(&s.task.id), bytes);
        if let Some(at) = s.finished_at {
            self.insert(keys::finished(at, &s.task.id), Vec::new());
        }
        Ok(())
    }

    /// Up to `limit` live entries with `start <= key < end`, in key order, merging the tree
    /// with this batch's writes (a removal here hides the tree's entry).
    pub(crate) fn range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Entries, CalloutError> {
        let mut out = Vec::new();
        let mut tree = self.tree.range(start..end).peekable();
        let mut over = self
            .overlay
            .range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))
            .peekable();
        while out.len() < limit {
            let tree_key = match tree.peek() {
                Some(Ok((k, _))) => Some(k.to_vec()),
                Some(Err(_)) => match tree.next() {
                    Some(Err(e)) => return Err(e.into()),
                    _ => None,
                },
                None => None,
            };
            let over_key = over.peek().map(|(k, _)| k.as_slice());
            let take_tree = match (&tree_key, over_key) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(t), Some(o)) => {
                    if t.as_slice() == o {
                        tree.next(); // shadowed by this batch's write
                        false
                    } else {
                        t.as_slice() < o
                    }
                }
            };
            if take_tree {
                if let Some(item) = tree.next() {
                    let (k, v) = item?;
                    out.push((k.to_vec(), v.to_vec()));
                }
            } else if let Some((k, Some(v))) = over.next() {
                out.push((k.clone(), v.clone()));
            }
        }
        Ok(out)
    }

    /// Up to `limit` live entries whose key starts with `prefix`.
    pub(crate) fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<Entries, CalloutError> {
        self.range(prefix, &keys::prefix_end(prefix), limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, sled::Tree) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        (dir, db.open_tree("t").unwrap())
    }

    #[test]
    fn reads_see_own_writes_and_commit_is_atomic() {
        let (_dir, tree) = tree();
        tree.insert(b"x/1", b"a".to_vec()).unwrap();
        tree.insert(b"x/3", b"c".to_vec()).unwrap();
        let mut txn = Txn::new(tree.clone());
        txn.insert(b"x/2".to_vec(), b"b".to_vec());
        txn.remove(b"x/3".to_vec());
        txn.insert(b"x/1".to_vec(), b"A".to_vec());
        assert_eq!(txn.get(b"x/3").unwrap(), None);
        let all = txn.scan_prefix(b"x/", usize::MAX).unwrap();
        assert_eq!(
            all,
            vec![
                (b"x/1".to_vec(), b"A".to_vec()),
                (b"x/2".to_vec(), b"b".to_vec())
            ]
        );
        assert_eq!(txn.scan_prefix(b"x/", 1).unwrap().len(), 1);
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
        let (_dir, tree) = tree();
        let mut txn = Txn::new(tree.clone());
        txn.insert(b"k".to_vec(), b"v".to_vec());
        assert_eq!(txn.len(), 1);
        drop(txn);
        assert!(tree.is_empty());
    }
}
