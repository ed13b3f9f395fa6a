//! Offline backup of a data dir: a consistent copy of the store (sled's export/import, so the
//! copy is compacted and independent of the original's files) plus every other file of the
//! data dir (principals, secrets), checked by the store checker before it is reported good.
//! The broker holds the store's lock while it runs, so a backup is refused until it stops.

use crate::datadir;
use std::path::{Path, PathBuf};

/// What a finished backup holds.
#[derive(Debug)]
pub struct BackupReport {
    pub dest: PathBuf,
    pub trees: usize,
    pub keys: usize,
    pub files: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} holds no store: is it an extbus data dir?")]
    NoStore(PathBuf),
    #[error("{0} exists and is not empty: back up into a new directory")]
    DestNotEmpty(PathBuf),
    #[error("{0} is the data dir itself or inside it: back up into another directory")]
    DestInside(PathBuf),
    #[error(
        "the store in {0} is in use (is the broker running on this data dir? stop it first): {1}"
    )]
    InUse(PathBuf, String),
    #[error("the copy in {0} failed the store check: {1}")]
    Inconsistent(PathBuf, String),
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("store: {0}")]
    Store(String),
}

/// Copies `data_dir` to `dest` (created 0700; must not exist or be empty).
pub fn backup(data_dir: &Path, dest: &Path) -> Result<BackupReport, BackupError> {
    let store = data_dir.join("store");
    if !store.join("conf").exists() && !store.join("db").exists() {
        return Err(BackupError::NoStore(data_dir.to_path_buf()));
    }
    check_dest(data_dir, dest)?;
    let src = open(&store).map_err(|e| BackupError::InUse(data_dir.into(), e))?;
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| BackupError::Io(p, e)
    };
    datadir::create_private(dest).map_err(io(dest))?;
    let dest_store = dest.join("store");
    datadir::create_private(&dest_store).map_err(io(&dest_store))?;
    let copy = open(&dest_store).map_err(BackupError::Store)?;
    copy.import(src.export());
    copy.flush()
        .map_err(|e| BackupError::Store(e.to_string()))?;
    let (trees, keys) = count(&src, &copy)?;
    let problems = extbus_callouts::Store::open_db(&copy)
        .and_then(|s| s.verify())
        .map_err(|e| BackupError::Store(e.to_string()))?;
    if !problems.is_empty() {
        return Err(BackupError::Inconsistent(
            dest.to_path_buf(),
            problems.join("; "),
        ));
    }
    drop(copy);
    let files = copy_files(data_dir, dest)?;
    datadir::restrict_tree(dest).map_err(io(dest))?;
    Ok(BackupReport {
        dest: dest.to_path_buf(),
        trees,
        keys,
        files,
    })
}

fn check_dest(data_dir: &Path, dest: &Path) -> Result<(), BackupError> {
    if let (Ok(d), Ok(s)) = (
        std::fs::canonicalize(dest.parent().unwrap_or(dest)),
        std::fs::canonicalize(data_dir),
    ) {
        let full = d.join(dest.file_name().unwrap_or_default());
        if full.starts_with(&s) {
            return Err(BackupError::DestInside(dest.to_path_buf()));
        }
    }
    match std::fs::read_dir(dest).map(|mut entries| entries.next().is_some()) {
        Ok(true) => Err(BackupError::DestNotEmpty(dest.to_path_buf())),
        Ok(false) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(BackupError::Io(dest.to_path_buf(), e)),
    }
}

fn open(path: &Path) -> Result<sled::Db, String> {
    sled::Config::new()
        .path(path)
        .flush_every_ms(None)
        .open()
        .map_err(|e| e.to_string())
}

/// Trees and keys in the copy, checked against the original so a short import is an error.
fn count(src: &sled::Db, copy: &sled::Db) -> Result<(usize, usize), BackupError> {
    let mut keys = 0;
    let names = src.tree_names();
    for name in &names {
        let (a, b) = (
            src.open_tree(name)
                .map_err(|e| BackupError::Store(e.to_string()))?,
            copy.open_tree(name)
                .map_err(|e| BackupError::Store(e.to_string()))?,
        );
        if a.len() != b.len() {
            return Err(BackupError::Store(format!(
                "tree {} has {} keys in the copy, {} in the original",
                String::from_utf8_lossy(name),
                b.len(),
                a.len()
            )));
        }
        keys += a.len();
    }
    Ok((names.len(), keys))
}

/// Every file of the data dir outside `store/` (principals, secrets), recursively.
fn copy_files(from: &Path, to: &Path) -> Result<usize, BackupError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| BackupError::Io(p, e)
    };
    let mut n = 0;
    for entry in std::fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(io(&src))?;
        if kind.is_dir() {
            if entry.file_name() == "store" {
                continue;
            }
            datadir::create_private(&dst).map_err(io(&dst))?;
            n += copy_files(&src, &dst)?;
        } else if kind.is_file() {
            std::fs::copy(&src, &dst).map_err(io(&src))?;
            n += 1;
        }
    }
    Ok(n)
}
