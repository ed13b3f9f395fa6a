//! The store's named sled trees: `TreeId` names each one, `Trees` opens them all once from the
//! `Db`. Every write of the broker goes through one `Txn` over these trees, so that a batch's
//! tasks, events, services and entities are committed together or not at all.

/// One named tree of the store. The names are the on-disk layout: they must not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TreeId {
    /// Tasks, their indexes and registered rules (`keys` has the layout).
    Callouts,
    /// Audit events by big-endian `seq`.
    Events,
    /// (source, id) -> seq of logged events, for de-duplication.
    EventIds,
    /// The event log's marks (the highest seq ever written).
    EventMeta,
    /// What each (principal, component) registered besides rules (services, time, switch),
    /// and the switches of whole principals (the broker's `coordinator/records.rs`).
    Services,
    /// Entity types by type id.
    EntityTypes,
    /// Entities by entity id.
    Entities,
    /// Entity ids by type, org and state, for queries in id order (empty values).
    EntityIndex,
    /// Metadata entries by object id (entity or task).
    Metadata,
    /// Object ids by (kind, domain, namespace, key, typed value), for searches (empty values).
    MetadataIndex,
}

/// How many trees there are.
pub(crate) const TREE_COUNT: usize = 10;

impl TreeId {
    /// Every tree, in index order.
    pub const ALL: [TreeId; TREE_COUNT] = [
        TreeId::Callouts,
        TreeId::Events,
        TreeId::EventIds,
        TreeId::EventMeta,
        TreeId::Services,
        TreeId::EntityTypes,
        TreeId::Entities,
        TreeId::EntityIndex,
        TreeId::Metadata,
        TreeId::MetadataIndex,
    ];

    /// The tree's name inside the sled database.
    pub const fn name(self) -> &'static str {
        match self {
            TreeId::Callouts => "callouts",
            TreeId::Events => "events",
            TreeId::EventIds => "event-ids",
            TreeId::EventMeta => "event-meta",
            TreeId::Services => "services",
            TreeId::EntityTypes => "entity-types",
            TreeId::Entities => "entities",
            TreeId::EntityIndex => "entity-index",
            TreeId::Metadata => "metadata",
            TreeId::MetadataIndex => "metadata-index",
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

/// Every named tree of one database, opened once. Cheap to clone; clones share the trees.
#[derive(Clone)]
pub struct Trees {
    db: sled::Db,
    trees: [sled::Tree; TREE_COUNT],
}

impl Trees {
    /// Opens (or creates) every named tree of `db`.
    pub fn open(db: &sled::Db) -> Result<Trees, sled::Error> {
        let open = |id: TreeId| db.open_tree(id.name());
        Ok(Trees {
            db: db.clone(),
            trees: [
                open(TreeId::Callouts)?,
                open(TreeId::Events)?,
                open(TreeId::EventIds)?,
                open(TreeId::EventMeta)?,
                open(TreeId::Services)?,
                open(TreeId::EntityTypes)?,
                open(TreeId::Entities)?,
                open(TreeId::EntityIndex)?,
                open(TreeId::Metadata)?,
                open(TreeId::MetadataIndex)?,
            ],
        })
    }

    /// The committed tree, for reads outside a batch. Writes go through a `Txn`.
    pub fn tree(&self, id: TreeId) -> &sled::Tree {
        &self.trees[id.index()]
    }

    /// The database the trees belong to (flush, size on disk).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_index_their_own_tree_under_the_names_of_the_layout() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        // Data written under the tree names before `Trees` existed is found through it.
        for (n, id) in TreeId::ALL.into_iter().enumerate() {
            assert_eq!(id.index(), n);
            db.open_tree(id.name())
                .unwrap()
                .insert(b"k", id.name().as_bytes())
                .unwrap();
        }
        let trees = Trees::open(&db).unwrap();
        for id in TreeId::ALL {
            let v = trees.tree(id).get(b"k").unwrap().unwrap();
            assert_eq!(v.as_ref(), id.name().as_bytes());
        }
        let names: Vec<_> = TreeId::ALL.iter().map(|t| t.name()).collect();
        assert_eq!(
            names,
            [
                "callouts",
                "events",
                "event-ids",
                "event-meta",
                "services",
                "entity-types",
                "entities",
                "entity-index",
                "metadata",
                "metadata-index"
            ]
        );
    }
}
