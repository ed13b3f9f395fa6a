//! Principals: named identities with roles, orgs and an argon2-hashed secret, kept in
//! `principals.json` in the data dir (a file, not sled, so `extbus principal add` works while
//! the broker runs; the broker reloads it when it changes). Never stores a plain secret: each
//! record keeps an argon2 hash and a keyed digest (the Bearer index, see `auth::hashing`).

use crate::auth::hashing::{hash_secret, DigestKey, Hasher};
use extbus_schema::Role;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, RwLock};
use std::time::SystemTime;

pub const FILE_NAME: &str = "principals.json";

/// A principal as the gate and the coordinator see it (no secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub name: String,
    pub roles: Vec<Role>,
    /// Orgs this principal is limited to; `*` means all.
    pub orgs: Vec<String>,
}

impl Principal {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role) || self.roles.contains(&Role::Admin)
    }

    pub fn is_admin(&self) -> bool {
        self.roles.contains(&Role::Admin)
    }

    pub fn all_orgs(&self) -> bool {
        self.orgs.iter().any(|o| o == "*")
    }

    pub fn in_org(&self, org: &str) -> bool {
        self.all_orgs() || self.orgs.iter().any(|o| o == org)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    roles: Vec<Role>,
    orgs: Vec<String>,
    secret_hash: String,
    /// HMAC-SHA256 of the secret under `secrets.key`; absent in files written before it
    /// existed, and then filled in at the principal's next successful login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_digest: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PrincipalError {
    #[error("invalid principal name '{0}': use 1-64 characters of [a-z0-9-]")]
    InvalidName(String),
    #[error("invalid org '{0}': use 1-64 characters of [a-z0-9-], or *")]
    InvalidOrg(String),
    #[error("principal '{0}' already exists")]
    Exists(String),
    #[error("no principal named '{0}'")]
    Unknown(String),
    #[error("a principal needs at least one role")]
    NoRole,
    #[error("principals file {path}: {why}")]
    File { path: PathBuf, why: String },
}

/// A principal name: `[a-z0-9-]{1,64}` (one rule for every name, in bus-schema).
pub use extbus_schema::names::valid_name;

/// The principals file and a cache of secrets already verified (argon2 is slow on purpose;
/// the cache keeps reconnect storms cheap without keeping plain secrets).
pub struct Principals {
    path: PathBuf,
    state: RwLock<Loaded>,
    verified: Mutex<HashSet<[u8; 32]>>,
    /// sha256(secret) -> principal name, for Bearer secrets already verified.
    bearers: Mutex<HashMap<[u8; 32], String>>,
    /// Names the broker acts as itself (executable extensions): nobody logs in as them.
    reserved: RwLock<HashSet<String>>,
    /// The Bearer index key, read (or created) at first need; `None` if unusable.
    key: OnceLock<Option<DigestKey>>,
}

struct Loaded {
    records: BTreeMap<String, Record>,
    mtime: Option<SystemTime>,
    /// secret digest -> principal name.
    by_digest: HashMap<String, String>,
}

impl Loaded {
    fn new(records: BTreeMap<String, Record>, mtime: Option<SystemTime>) -> Loaded {
        let by_digest = records
            .iter()
            .filter_map(|(n, r)| Some((r.secret_digest.clone()?, n.clone())))
            .collect();
        Loaded {
            records,
            mtime,
            by_digest,
        }
    }
}

fn read_file(path: &Path) -> Result<Loaded, PrincipalError> {
    let err = |why: String| PrincipalError::File {
        path: path.to_path_buf(),
        why,
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            let records = serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))?;
            let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
            Ok(Loaded::new(records, mtime))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(Loaded::new(BTreeMap::new(), None))
        }
        Err(e) => Err(err(e.to_string())),
    }
}

/// A new random secret: 32 hex characters (128 bits).
pub fn new_secret() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Principals {
    /// Opens the principals file in `data_dir` (creating nothing until a write).
    pub fn open(data_dir: &Path) -> Result<Self, PrincipalError> {
        let path = data_dir.join(FILE_NAME);
        let state = read_file(&path)?;
        Ok(Principals {
            path,
            state: RwLock::new(state),
            verified: Mutex::new(HashSet::new()),
            bearers: Mutex::new(HashMap::new()),
            reserved: RwLock::new(HashSet::new()),
            key: OnceLock::new(),
        })
    }

    fn key(&self) -> Option<&DigestKey> {
        self.key
            .get_or_init(|| {
                let dir = self.path.parent().unwrap_or(Path::new("."));
                DigestKey::load_or_create(dir)
                    .map_err(|e| tracing::warn!(error = %e, "no Bearer index key; nameless Bearer secrets are checked one principal at a time"))
                    .ok()
            })
            .as_ref()
    }

    /// Reserves `names` (executable extensions', in place of those reserved before: a reload
    /// may add and remove entries) so that no client authenticates as them, even if a
    /// principal of that name exists; returns the existing ones, to warn about.
    pub fn reserve(&self, names: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut r = self.reserved.write().unwrap();
        *r = names.into_iter().collect();
        self.list()
            .into_iter()
            .map(|p| p.name)
            .filter(|n| r.contains(n))
            .collect()
    }

    fn is_reserved(&self, name: &str) -> bool {
        self.reserved.read().unwrap().contains(name)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-reads the file if it changed on disk; a broken file keeps the last good state.
    pub fn reload_if_changed(&self) {
        let mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        if mtime == self.state.read().unwrap().mtime {
            return;
        }
        match read_file(&self.path) {
            Ok(loaded) => {
                *self.state.write().unwrap() = loaded;
                self.forget_verified();
            }
            Err(e) => {
                tracing::warn!(error = %e, "principals file unreadable; keeping the previous principals")
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.state.read().unwrap().records.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<Principal> {
        let st = self.state.read().unwrap();
        st.records.get(name).map(|r| Principal {
            name: name.to_string(),
            roles: r.roles.clone(),
            orgs: r.orgs.clone(),
        })
    }

    pub fn list(&self) -> Vec<Principal> {
        let st = self.state.read().unwrap();
        st.records
            .iter()
            .map(|(n, r)| Principal {
                name: n.clone(),
                roles: r.roles.clone(),
                orgs: r.orgs.clone(),
            })
            .collect()
    }

    fn forget_verified(&self) {
        self.verified.lock().unwrap().clear();
        self.bearers.lock().unwrap().clear();
    }

    /// The cache key of a verified (name, secret) under the stored hash.
    fn cache_key(name: &str, secret: &str, hash: &str) -> [u8; 32] {
        Sha256::new()
            .chain_update(name.as_bytes())
            .chain_update([0u8])
            .chain_update(secret.as_bytes())
            .chain_update([0u8])
            .chain_update(hash.as_bytes())
            .finalize()
            .into()
    }

    fn stored_hash(&self, name: &str) -> Option<String> {
        let st = self.state.read().unwrap();
        Some(st.records.get(name)?.secret_hash.clone())
    }

    /// Checks a name and secret; returns the principal on success. Slow (argon2).
    pub fn verify(&self, name: &str, secret: &str) -> Option<Principal> {
        self.verify_with(name, secret, &mut Hasher::default())
    }

    /// `verify` with a caller's reusable argon2 work area.
    pub fn verify_with(&self, name: &str, secret: &str, hasher: &mut Hasher) -> Option<Principal> {
        if self.is_reserved(name) {
            return None;
        }
        self.reload_if_changed();
        let hash = self.stored_hash(name)?;
        let key = Self::cache_key(name, secret, &hash);
        if !self.verified.lock().unwrap().contains(&key) {
            if !hasher.matches(secret.as_bytes(), &hash) {
                return None;
            }
            self.verified.lock().unwrap().insert(key);
            self.fill_digest(name, secret, &hash);
        }
        self.get(name)
    }

    /// Whether a principal of this name exists and may log in (no secret checked).
    pub fn may_log_in(&self, name: &str) -> bool {
        !self.is_reserved(name) && self.state.read().unwrap().records.contains_key(name)
    }

    /// Gives a principal from an older file its Bearer digest, once its secret is known good.
    fn fill_digest(&self, name: &str, secret: &str, hash: &str) {
        let Some(digest) = self.key().map(|k| k.digest(secret)) else {
            return;
        };
        let mut st = self.state.write().unwrap();
        let mut records = st.records.clone();
        match records.get_mut(name) {
            Some(r) if r.secret_hash == hash && r.secret_digest.is_none() => {
                r.secret_digest = Some(digest)
            }
            _ => return,
        }
        match self.write(&records) {
            Ok(mtime) => *st = Loaded::new(records, mtime),
            Err(e) => tracing::warn!(error = %e, "cannot record a Bearer digest"),
        }
    }

    /// `verify` without argon2: `None` unless this name and secret were verified before
    /// (callers on async threads try this first and run `verify` off-thread on a miss).
    pub fn verify_cached(&self, name: &str, secret: &str) -> Option<Principal> {
        if self.is_reserved(name) {
            return None;
        }
        self.reload_if_changed();
        let hash = self.stored_hash(name)?;
        let key = Self::cache_key(name, secret, &hash);
        if self.verified.lock().unwrap().contains(&key) {
            self.get(name)
        } else {
            None
        }
    }

    fn bearer_key(secret: &str) -> [u8; 32] {
        Sha256::new()
            .chain_update(b"bearer\0")
            .chain_update(secret.as_bytes())
            .finalize()
            .into()
    }

    /// The principal whose secret is `secret`, if that secret was verified before (as a
    /// Bearer secret, or with its name: the index then says whose it is).
    pub fn bearer_cached(&self, secret: &str) -> Option<Principal> {
        let known = self
            .bearers
            .lock()
            .unwrap()
            .get(&Self::bearer_key(secret))
            .cloned();
        let name = known.or_else(|| self.indexed(secret))?;
        self.verify_cached(&name, secret)
    }

    /// Who may own a nameless Bearer `secret`: the principal its keyed digest indexes, else
    /// only principals from an older file that have no digest yet (each gets one at its next
    /// successful login, so this list shrinks to nothing).
    pub fn bearer_candidates(&self, secret: &str) -> Vec<String> {
        self.reload_if_changed();
        let digest = self.key().map(|k| k.digest(secret));
        let st = self.state.read().unwrap();
        if let Some(name) = digest.as_ref().and_then(|d| st.by_digest.get(d)) {
            return vec![name.clone()];
        }
        st.records
            .iter()
            .filter(|(_, r)| digest.is_none() || r.secret_digest.is_none())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The principal the Bearer index names for `secret` (a digest lookup, no argon2).
    pub fn indexed(&self, secret: &str) -> Option<String> {
        let digest = self.key()?.digest(secret);
        self.state.read().unwrap().by_digest.get(&digest).cloned()
    }

    /// The principal whose secret is `secret` (an HTTP Bearer token carries no name): one
    /// digest lookup, then argon2 for that principal only (or for each principal without a
    /// digest yet). Slow: call it off the async threads.
    pub fn verify_bearer(&self, secret: &str) -> Option<Principal> {
        self.verify_bearer_with(secret, &mut Hasher::default())
    }

    /// `verify_bearer` with a caller's reusable argon2 work area.
    pub fn verify_bearer_with(&self, secret: &str, hasher: &mut Hasher) -> Option<Principal> {
        if let Some(p) = self.bearer_cached(secret) {
            return Some(p);
        }
        let found = self
            .bearer_candidates(secret)
            .iter()
            .find_map(|n| self.verify_with(n, secret, hasher))?;
        self.bearers
            .lock()
            .unwrap()
            .insert(Self::bearer_key(secret), found.name.clone());
        Some(found)
    }

    /// Adds a principal with the given secret (or a new random one) and returns the secret.
    pub fn add(
        &self,
        name: &str,
        roles: Vec<Role>,
        orgs: Vec<String>,
        secret: Option<String>,
    ) -> Result<String, PrincipalError> {
        if !valid_name(name) {
            return Err(PrincipalError::InvalidName(name.to_string()));
        }
        if roles.is_empty() {
            return Err(PrincipalError::NoRole);
        }
        let orgs = if orgs.is_empty() {
            vec!["*".to_string()]
        } else {
            orgs
        };
        if let Some(bad) = orgs.iter().find(|o| o.as_str() != "*" && !valid_name(o)) {
            return Err(PrincipalError::InvalidOrg(bad.clone()));
        }
        self.reload_if_changed();
        let secret = secret.unwrap_or_else(new_secret);
        let mut st = self.state.write().unwrap();
        if st.records.contains_key(name) {
            return Err(PrincipalError::Exists(name.to_string()));
        }
        let mut records = st.records.clone();
        records.insert(
            name.to_string(),
            Record {
                roles,
                orgs,
                secret_hash: hash_secret(&secret),
                secret_digest: self.key().map(|k| k.digest(&secret)),
            },
        );
        let mtime = self.write(&records)?;
        *st = Loaded::new(records, mtime);
        Ok(secret)
    }

    pub fn remove(&self, name: &str) -> Result<(), PrincipalError> {
        self.reload_if_changed();
        let mut st = self.state.write().unwrap();
        let mut records = st.records.clone();
        if records.remove(name).is_none() {
            return Err(PrincipalError::Unknown(name.to_string()));
        }
        let mtime = self.write(&records)?;
        *st = Loaded::new(records, mtime);
        self.forget_verified();
        Ok(())
    }

    /// Writes atomically (temp file + rename), readable by the owner only.
    fn write(
        &self,
        records: &BTreeMap<String, Record>,
    ) -> Result<Option<SystemTime>, PrincipalError> {
        let err = |why: String| PrincipalError::File {
            path: self.path.clone(),
            why,
        };
        if let Some(dir) = self.path.parent() {
            crate::datadir::create_private(dir).map_err(|e| err(e.to_string()))?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(records).map_err(|e| err(e.to_string()))?;
        crate::datadir::write_private(&tmp, &body).map_err(|e| err(e.to_string()))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| err(e.to_string()))?;
        Ok(std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_verify_remove() {
        let dir = tempfile::tempdir().unwrap();
        let p = Principals::open(dir.path()).unwrap();
        let secret = p.add("alice", vec![Role::Operator], vec![], None).unwrap();
        assert_eq!(secret.len(), 32);
        let got = p.verify("alice", &secret).unwrap();
        assert_eq!(got.orgs, vec!["*"]);
        assert!(p.verify("alice", "wrong").is_none());
        assert!(p.verify("bob", &secret).is_none());
        assert!(matches!(
            p.add("alice", vec![Role::Admin], vec![], None),
            Err(PrincipalError::Exists(_))
        ));
        assert!(matches!(
            p.add("Bad Name", vec![Role::Admin], vec![], None),
            Err(PrincipalError::InvalidName(_))
        ));
        // A second handle sees the file the first wrote.
        let q = Principals::open(dir.path()).unwrap();
        assert!(q.verify("alice", &secret).is_some());
        q.remove("alice").unwrap();
        p.reload_if_changed();
        assert!(p.get("alice").is_none());
        let raw = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(!raw.contains(&secret));
    }

    #[test]
    fn reserved_names_never_authenticate() {
        let dir = tempfile::tempdir().unwrap();
        let p = Principals::open(dir.path()).unwrap();
        p.add("quota", vec![Role::Extension], vec![], Some("sq".into()))
            .unwrap();
        assert!(p.verify("quota", "sq").is_some());
        assert_eq!(
            p.reserve(["quota".to_string(), "other".to_string()]),
            ["quota"]
        );
        assert!(p.verify("quota", "sq").is_none());
        assert!(p.verify_cached("quota", "sq").is_none());
        assert!(p.verify_bearer("sq").is_none());
        // Reserving anew replaces the names: a removed entry's name logs in again.
        assert!(p.reserve(["other".to_string()]).is_empty());
        assert!(p.verify("quota", "sq").is_some());
    }

    #[test]
    fn bearer_secrets_find_their_principal() {
        let dir = tempfile::tempdir().unwrap();
        let p = Principals::open(dir.path()).unwrap();
        p.add("a", vec![Role::Observer], vec![], Some("sa".into()))
            .unwrap();
        p.add("b", vec![Role::Extension], vec![], Some("sb".into()))
            .unwrap();
        assert!(p.bearer_cached("sb").is_none());
        assert!(p.verify_cached("b", "sb").is_none());
        assert_eq!(p.verify_bearer("sb").unwrap().name, "b");
        assert_eq!(p.bearer_cached("sb").unwrap().name, "b");
        assert_eq!(p.verify_cached("b", "sb").unwrap().name, "b");
        assert!(p.verify_bearer("nope").is_none());
        assert!(p.bearer_cached("sa").is_none());
        p.remove("b").unwrap();
        assert!(p.bearer_cached("sb").is_none());
        assert!(p.verify_bearer("sb").is_none());
    }

    #[test]
    fn bearer_index_names_one_principal_and_older_files_gain_digests() {
        let dir = tempfile::tempdir().unwrap();
        let p = Principals::open(dir.path()).unwrap();
        for n in ["a", "b", "c"] {
            p.add(n, vec![Role::Observer], vec![], Some(format!("s{n}")))
                .unwrap();
        }
        assert_eq!(p.bearer_candidates("sb"), ["b"]);
        assert!(p.bearer_candidates("wrong").is_empty());
        let mut h = Hasher::default();
        assert_eq!(p.verify_bearer_with("sc", &mut h).unwrap().name, "c");
        assert!(p.verify_bearer_with("wrong", &mut h).is_none());
        assert_eq!(
            h.runs, 1,
            "one argon2 check for a right secret, none for a wrong one"
        );

        // A file written before digests existed: scanned until each principal logs in once.
        let path = dir.path().join(FILE_NAME);
        let mut raw: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        for r in raw.as_object_mut().unwrap().values_mut() {
            r.as_object_mut().unwrap().remove("secret_digest");
        }
        std::fs::write(&path, serde_json::to_vec(&raw).unwrap()).unwrap();
        let old = Principals::open(dir.path()).unwrap();
        assert_eq!(old.bearer_candidates("sb"), ["a", "b", "c"]);
        assert_eq!(old.verify_bearer("sb").unwrap().name, "b");
        assert!(old.verify("a", "sa").is_some());
        assert_eq!(old.bearer_candidates("sb"), ["b"]);
        assert_eq!(old.bearer_candidates("wrong"), ["c"]);
        let fresh = Principals::open(dir.path()).unwrap();
        assert_eq!(fresh.indexed("sa").as_deref(), Some("a"));
        assert!(!std::fs::read_to_string(&path).unwrap().contains("\"sb\""));
    }
}
