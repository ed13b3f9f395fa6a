//! The data dir is private: the store holds every task payload and event, the principals file
//! every secret hash. Directories the broker creates are 0700, the store's files are made 0600,
//! and a data dir that others can reach is reported at start (it is not changed behind the
//! operator's back).

use std::io;
use std::path::Path;

/// Creates `dir` and any missing parents with mode 0700 (existing ones are left as they are).
pub fn create_private(dir: &Path) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Writes a file that only its owner can read (0600 on Unix).
pub fn write_private(path: &Path, body: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(body)?;
    f.sync_all()
}

/// Removes group and other permissions from every file and directory under `dir` (the
/// store's files, which sled creates with the process umask). Returns how many were changed.
pub fn restrict_tree(dir: &Path) -> io::Result<usize> {
    let mut changed = 0;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d)? {
                let entry = entry?;
                let meta = entry.metadata()?;
                let mode = meta.permissions().mode();
                if meta.is_dir() {
                    stack.push(entry.path());
                }
                if mode & 0o077 != 0 && (meta.is_dir() || meta.is_file()) {
                    let private = if meta.is_dir() { 0o700 } else { 0o600 };
                    std::fs::set_permissions(
                        entry.path(),
                        std::fs::Permissions::from_mode(private),
                    )?;
                    changed += 1;
                }
            }
        }
    }
    Ok(changed)
}

/// Why `dir` is not private, if it is not: its mode lets group or others in.
pub fn exposure(dir: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir).ok()?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Some(format!(
                "mode {mode:03o} lets group or others read it (chmod 700 {})",
                dir.display()
            ));
        }
    }
    let _ = dir;
    None
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn created_dirs_are_private_and_open_ones_are_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        create_private(&dir).unwrap();
        assert_eq!((mode(&tmp.path().join("a")), mode(&dir)), (0o700, 0o700));
        assert_eq!(exposure(&dir), None);

        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
        let why = exposure(&dir).expect("0750 is reported");
        assert!(why.contains("750"), "{why}");
        // An existing dir keeps its mode: the operator decides.
        create_private(&dir).unwrap();
        assert_eq!(mode(&dir), 0o750);
    }

    #[test]
    fn restrict_tree_closes_files_and_subdirs() {
        let tmp = tempfile::tempdir().unwrap();
        let sub = tmp.path().join("blobs");
        std::fs::create_dir(&sub).unwrap();
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o755)).unwrap();
        for f in [tmp.path().join("db"), sub.join("1")] {
            std::fs::write(&f, b"x").unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        assert_eq!(restrict_tree(tmp.path()).unwrap(), 3);
        assert_eq!(mode(&sub), 0o700);
        assert_eq!(mode(&tmp.path().join("db")), 0o600);
        assert_eq!(mode(&sub.join("1")), 0o600);
        assert_eq!(restrict_tree(tmp.path()).unwrap(), 0);
    }
}
