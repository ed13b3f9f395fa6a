//! Secure entity fields: taken out of the content before anything is stored or shown, and
//! sealed at rest with ChaCha20-Poly1305 under a key kept in a 0600 file (the data dir's
//! `entity-secrets.key` unless the config names another), bound to their entity id.
//! A sealed value is `base64(key id (8) || nonce (12) || ciphertext)`; the key id lets old
//! keys (`entities.old_key_files`) still open what they sealed after a rotation.

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

const B64: base64::engine::general_purpose::GeneralPurpose =
    base64::engine::general_purpose::STANDARD;

/// One (JSON Pointer, value) pair taken out of an entity's content.
pub type Secrets = Vec<(String, Value)>;

struct SealKey {
    id: [u8; 8],
    cipher: ChaCha20Poly1305,
}

impl SealKey {
    fn from_bytes(bytes: &[u8]) -> Result<SealKey, String> {
        if bytes.len() != 32 {
            return Err(format!("a key is 32 bytes, this one {}", bytes.len()));
        }
        let digest = Sha256::digest(bytes);
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        Ok(SealKey {
            id,
            cipher: ChaCha20Poly1305::new(Key::from_slice(bytes)),
        })
    }

    fn read(path: &Path) -> Result<SealKey, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let bytes = B64
            .decode(text.trim())
            .map_err(|e| format!("{}: not base64: {e}", path.display()))?;
        Self::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// The keys secure fields are sealed and opened with.
pub struct Sealer {
    path: PathBuf,
    current: Option<SealKey>,
    old: Vec<SealKey>,
}

impl Sealer {
    /// Reads the key file if it exists (it is created on first use) and every old key.
    pub fn open(cfg: &crate::config::Config) -> Result<Sealer, String> {
        let path = cfg
            .entities
            .key_file
            .clone()
            .unwrap_or_else(|| cfg.data_dir.join(crate::config::entities::DEFAULT_KEY_FILE));
        let current = if path.exists() {
            Some(SealKey::read(&path)?)
        } else {
            None
        };
        let old = cfg
            .entities
            .old_key_files
            .iter()
            .map(|p| SealKey::read(p))
            .collect::<Result<_, _>>()?;
        Ok(Sealer { path, current, old })
    }

    fn current(&mut self) -> Result<&SealKey, String> {
        if self.current.is_none() {
            let mut bytes = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut bytes);
            if let Some(dir) = self.path.parent() {
                crate::datadir::create_private(dir).map_err(|e| e.to_string())?;
            }
            let text = format!("{}\n", B64.encode(bytes));
            crate::datadir::write_private(&self.path, text.as_bytes())
                .map_err(|e| format!("{}: {e}", self.path.display()))?;
            tracing::info!(path = %self.path.display(), "entity secrets key created");
            self.current = Some(SealKey::from_bytes(&bytes)?);
        }
        self.current
            .as_ref()
            .ok_or_else(|| "no sealing key".to_string())
    }

    /// Seals `secrets` for entity `id`; `None` when there is nothing to seal.
    pub fn seal(&mut self, id: &str, secrets: &Secrets) -> Result<Option<String>, String> {
        if secrets.is_empty() {
            return Ok(None);
        }
        let plain = serde_json::to_vec(secrets).map_err(|e| e.to_string())?;
        let key = self.current()?;
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = key
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: id.as_bytes(),
                },
            )
            .map_err(|_| "sealing failed".to_string())?;
        let mut out = Vec::with_capacity(20 + sealed.len());
        out.extend_from_slice(&key.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(Some(B64.encode(out)))
    }

    /// Opens what `seal` made for entity `id`, with whichever known key sealed it.
    pub fn unseal(&self, id: &str, sealed: &str) -> Result<Secrets, String> {
        let raw = B64.decode(sealed).map_err(|e| e.to_string())?;
        if raw.len() < 20 {
            return Err("sealed value too short".into());
        }
        let key = self
            .current
            .iter()
            .chain(self.old.iter())
            .find(|k| k.id[..] == raw[..8])
            .ok_or("sealed with a key that is not configured")?;
        let plain = key
            .cipher
            .decrypt(
                Nonce::from_slice(&raw[8..20]),
                Payload {
                    msg: &raw[20..],
                    aad: id.as_bytes(),
                },
            )
            .map_err(|_| "sealed value does not open (wrong key or damaged)".to_string())?;
        serde_json::from_slice(&plain).map_err(|e| e.to_string())
    }
}

fn tokens(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// Takes the values at `paths` out of `content` (where present).
pub fn split(content: &mut Value, paths: &[String]) -> Secrets {
    let mut out = Vec::new();
    for p in paths {
        let Some(cut) = p.rfind('/') else {
            continue;
        };
        let last = p[cut + 1..].replace("~1", "/").replace("~0", "~");
        if let Some(Value::Object(obj)) = content.pointer_mut(&p[..cut]) {
            if let Some(v) = obj.remove(&last) {
                out.push((p.clone(), v));
            }
        }
    }
    out
}

/// Puts `secrets` back into `content`, creating the objects on their way.
pub fn merge(content: &mut Value, secrets: &Secrets) {
    'each: for (p, v) in secrets {
        let t = tokens(p);
        let Some((last, parents)) = t.split_last() else {
            continue;
        };
        let mut at = &mut *content;
        for k in parents {
            at = match at {
                Value::Object(obj) => obj
                    .entry(k.clone())
                    .or_insert_with(|| Value::Object(Default::default())),
                _ => continue 'each,
            };
        }
        if let Value::Object(obj) = at {
            obj.insert(last.clone(), v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn split_merge_and_seal_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = crate::config::Config {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        let mut s = Sealer::open(&cfg).unwrap();
        let mut c = json!({"spec": {"password": "hunter2", "n": 1}, "token": "t", "x": 2});
        let paths = vec![
            "/spec/password".to_string(),
            "/token".into(),
            "/nope/x".into(),
        ];
        let secrets = split(&mut c, &paths);
        assert_eq!(c, json!({"spec": {"n": 1}, "x": 2}));
        let sealed = s.seal("e1", &secrets).unwrap().unwrap();
        assert!(!sealed.contains("hunter2"));
        assert_eq!(s.unseal("e1", &sealed).unwrap(), secrets);
        assert!(s.unseal("e2", &sealed).is_err(), "bound to its entity");
        merge(&mut c, &secrets);
        assert_eq!(c["spec"]["password"], "hunter2");
        // The key file is private and a new sealer reads the same key.
        let file = dir.path().join(crate::config::entities::DEFAULT_KEY_FILE);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let again = Sealer::open(&cfg).unwrap();
        assert_eq!(again.unseal("e1", &sealed).unwrap(), secrets);
        // After a rotation the old key still opens old values.
        let old = dir.path().join("old.key");
        std::fs::rename(&file, &old).unwrap();
        let rotated = crate::config::Config {
            entities: crate::config::entities::EntitiesConfig {
                old_key_files: vec![old],
                ..Default::default()
            },
            ..cfg.clone()
        };
        let mut r = Sealer::open(&rotated).unwrap();
        assert_eq!(r.unseal("e1", &sealed).unwrap(), secrets);
        let resealed = r.seal("e1", &secrets).unwrap().unwrap();
        assert_eq!(r.unseal("e1", &resealed).unwrap(), secrets);
        assert!(Sealer::open(&cfg).unwrap().unseal("e1", &resealed).is_ok());
    }
}
