//! Secret hashing: argon2 PHC strings for storage, checks that reuse one argon2 work area per
//! worker (a check allocates nothing), and the keyed digest that indexes Bearer secrets.

use argon2::password_hash::{rand_core::OsRng, Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::Path;

/// Largest argon2 work area a stored hash may ask for (256 MiB): a hash beyond it is refused.
const MAX_BLOCKS: usize = 256 * 1024;

/// A new argon2id PHC string for `secret` with a fresh salt.
pub fn hash_secret(secret: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .expect("argon2 hashing with a fresh salt cannot fail")
        .to_string()
}

/// One worker's argon2 work area, kept between checks so memory stays bounded and reused.
#[derive(Default)]
pub struct Hasher {
    blocks: Vec<Block>,
    /// argon2 computations done so far (for the hash metric).
    pub runs: u64,
}

impl Hasher {
    /// Whether `secret` matches the PHC string `phc` (compared in constant time).
    pub fn matches(&mut self, secret: &[u8], phc: &str) -> bool {
        self.check(secret, phc).unwrap_or(false)
    }

    fn check(&mut self, secret: &[u8], phc: &str) -> Option<bool> {
        let hash = PasswordHash::new(phc).ok()?;
        let expected = hash.hash?;
        let algorithm = Algorithm::try_from(hash.algorithm).ok()?;
        let version = match hash.version {
            Some(v) => Version::try_from(v).ok()?,
            None => Version::default(),
        };
        let params = Params::try_from(&hash).ok()?;
        let mut salt_buf = [0u8; 64];
        let salt = hash.salt?.decode_b64(&mut salt_buf).ok()?;
        let n = params.block_count();
        if n > MAX_BLOCKS {
            return None;
        }
        if self.blocks.len() < n {
            self.blocks.resize(n, Block::default());
        }
        let mut out = [0u8; 64];
        let out = out.get_mut(..expected.len())?;
        self.runs += 1;
        Argon2::new(algorithm, version, params)
            .hash_password_into_with_memory(secret, salt, out, &mut self.blocks[..n])
            .ok()?;
        Some(Output::new(out).ok()? == expected)
    }
}

/// The key of the Bearer index: HMAC-SHA256 over a secret, so the principals file alone does
/// not let anyone test guesses at full speed. Kept in `secrets.key` (0600) in the data dir.
pub struct DigestKey([u8; 32]);

pub const KEY_FILE: &str = "secrets.key";

impl DigestKey {
    /// Reads the key in `dir`, or creates it (atomically: two processes agree on one key).
    pub fn load_or_create(dir: &Path) -> std::io::Result<DigestKey> {
        let path = dir.join(KEY_FILE);
        if let Some(k) = Self::read(&path)? {
            return Ok(k);
        }
        std::fs::create_dir_all(dir)?;
        let key: [u8; 32] = rand::random();
        let tmp = dir.join(format!("{KEY_FILE}.{}.tmp", std::process::id()));
        crate::datadir::write_private(&tmp, hex(&key).as_bytes())?;
        // A hard link fails if the key exists: then the other writer's key wins.
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(DigestKey(key)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::read(&path)?.ok_or_else(|| std::io::Error::other("secrets.key vanished"))
            }
            Err(e) => Err(e),
        }
    }

    fn read(path: &Path) -> std::io::Result<Option<DigestKey>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let bad = || std::io::Error::other(format!("{} is not 64 hex digits", path.display()));
        let text = text.trim();
        if text.len() != 64 {
            return Err(bad());
        }
        let mut key = [0u8; 32];
        for (i, k) in key.iter_mut().enumerate() {
            *k = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Some(DigestKey(key)))
    }

    /// The index entry of `secret`: hex HMAC-SHA256.
    pub fn digest(&self, secret: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(secret.as_bytes());
        hex(&mac.finalize().into_bytes())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reused_work_area_checks_like_argon2() {
        let mut h = Hasher::default();
        let phc = hash_secret("s3cret");
        assert!(h.matches(b"s3cret", &phc));
        assert!(!h.matches(b"s3creT", &phc));
        assert!(!h.matches(b"s3cret", "not a phc string"));
        assert_eq!(h.runs, 2);
        // Same answer as the crate's own verifier, for a hash made with other parameters.
        let params = Params::new(8 * 1024, 1, 1, Some(32)).unwrap();
        let salt = SaltString::generate(&mut OsRng);
        let other = Argon2::new(Algorithm::Argon2i, Version::V0x13, params)
            .hash_password(b"x", &salt)
            .unwrap()
            .to_string();
        assert!(h.matches(b"x", &other));
        assert!(!h.matches(b"y", &other));
    }

    #[test]
    fn digest_key_is_created_once_and_shared() {
        let dir = tempfile::tempdir().unwrap();
        let a = DigestKey::load_or_create(dir.path()).unwrap();
        let b = DigestKey::load_or_create(dir.path()).unwrap();
        assert_eq!(a.digest("s"), b.digest("s"));
        assert_ne!(a.digest("s"), a.digest("t"));
        assert_eq!(a.digest("s").len(), 64);
        std::fs::write(dir.path().join(KEY_FILE), "short").unwrap();
        assert!(DigestKey::load_or_create(dir.path()).is_err());
    }
}
