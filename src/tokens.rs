//! Signed and random tokens: the HMAC key (`HERALD_SECRET`, or a key generated once into a
//! `.secret` file beside the database), signed per-subscriber tokens for links that must work
//! for as long as a mail is kept (unsubscribe), and random tokens stored only as hashes
//! (confirmation).
//!
//! Owns: key handling and token formats. Does not own: what a token grants (`store`, `http`).

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// A failure to obtain the signing key.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The key file could not be read or created.
    #[error("signing key {path}: {detail}")]
    KeyFile {
        /// The file.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// No key is configured and there is no database file to keep one beside.
    #[error(
        "HERALD_SECRET is required with a PostgreSQL database: every instance must sign links \
         with the same key (generate one with `openssl rand -hex 32`)"
    )]
    Required,
}

/// Signs and verifies tokens with the instance's key.
#[derive(Clone)]
pub struct Signer {
    key: SecretString,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer { key: [redacted] }")
    }
}

/// A fresh random token (256 bits, URL-safe).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    // The OS random source failing is not recoverable for a service that issues tokens.
    getrandom::getrandom(&mut bytes).expect("the operating system's random source is unavailable");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The hash under which a random token is stored (hex SHA-256).
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where the generated key lives for a database file.
pub fn secret_path(database: &Path) -> PathBuf {
    database.with_file_name(".secret")
}

/// Where `herald backup FILE` keeps the key of a backup: `FILE.secret`, beside the copy.
pub fn backup_secret_path(copy: &Path) -> PathBuf {
    let mut name = copy.as_os_str().to_os_string();
    name.push(".secret");
    PathBuf::from(name)
}

/// Creates `path` readable by its owner only (mode 0600) and writes `bytes`; an existing file
/// is an `AlreadyExists` error, never overwritten.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

impl Signer {
    /// A signer with the given key.
    pub fn new(key: SecretString) -> Signer {
        Signer { key }
    }

    /// The configured key, or the one in `.secret` beside the database file, generating it
    /// (mode 0600) on first use. A database that is not a file (PostgreSQL) needs the key
    /// configured.
    pub fn load(
        configured: Option<&SecretString>,
        database: Option<&Path>,
    ) -> Result<Signer, TokenError> {
        if let Some(key) = configured {
            return Ok(Signer::new(key.clone()));
        }
        let Some(database) = database else {
            return Err(TokenError::Required);
        };
        let path = secret_path(database);
        let fail = |detail: String| TokenError::KeyFile {
            path: path.display().to_string(),
            detail,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) if text.trim().len() >= 32 => {
                return Ok(Signer::new(SecretString::from(text.trim().to_string())));
            }
            Ok(_) => {
                return Err(fail(
                    "the file is too short to be a key (delete it to generate a new one)".into(),
                ));
            }
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(fail(err.to_string()));
            }
            Err(_) => {}
        }
        let key = random_token();
        match write_private(&path, key.as_bytes()) {
            Ok(()) => Ok(Signer::new(SecretString::from(key))),
            // Another process created it first: use theirs.
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                Signer::load(None, Some(database))
            }
            Err(err) => Err(fail(format!("cannot create it: {err}"))),
        }
    }

    /// Writes this signer's key to `target` (mode 0600), for a backup; refuses to overwrite
    /// an existing file. `Signer::load(None, db)` with the file restored as `.secret` beside
    /// `db` gives a signer whose tokens are this one's.
    pub fn save_key(&self, target: &Path) -> Result<(), TokenError> {
        write_private(target, self.key.expose_secret().as_bytes()).map_err(|err| {
            TokenError::KeyFile {
                path: target.display().to_string(),
                detail: if err.kind() == std::io::ErrorKind::AlreadyExists {
                    "the file already exists; choose a new name".into()
                } else {
                    format!("cannot write it: {err}")
                },
            }
        })
    }

    fn mac(&self, message: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(self.key.expose_secret().as_bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(message.as_bytes());
        mac
    }

    /// A token naming `id` for `purpose` (e.g. `unsubscribe`): `ID.SIGNATURE`.
    pub fn sign(&self, purpose: &str, id: i64) -> String {
        let tag = self.mac(&format!("{purpose}:{id}")).finalize().into_bytes();
        format!("{id}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// The id a token names, when its signature is valid for `purpose`.
    pub fn verify(&self, purpose: &str, token: &str) -> Option<i64> {
        let (id, signature) = token.split_once('.')?;
        let id: i64 = id.parse().ok()?;
        let tag = URL_SAFE_NO_PAD.decode(signature).ok()?;
        self.mac(&format!("{purpose}:{id}"))
            .verify_slice(&tag)
            .ok()?;
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_tokens_verify_only_untampered_and_for_their_purpose() {
        let signer = Signer::new(SecretString::from("k".repeat(40)));
        let token = signer.sign("unsubscribe", 42);
        assert_eq!(signer.verify("unsubscribe", &token), Some(42));
        assert_eq!(signer.verify("preferences", &token), None);
        let forged = token.replacen("42.", "43.", 1);
        assert_eq!(signer.verify("unsubscribe", &forged), None);
        let other = Signer::new(SecretString::from("x".repeat(40)));
        assert_eq!(other.verify("unsubscribe", &token), None);
        assert_eq!(signer.verify("unsubscribe", "garbage"), None);
    }

    #[test]
    fn the_key_is_generated_once_and_kept_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("herald.db");
        let a = Signer::load(None, Some(&db)).expect("generated");
        let b = Signer::load(None, Some(&db)).expect("read back");
        assert_eq!(b.verify("x", &a.sign("x", 1)), Some(1));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(secret_path(&db))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(hash_token("abc").len(), 64);

        // A saved key restored as `.secret` beside another database verifies the same tokens.
        let saved = dir.path().join("copy.db.secret");
        assert_eq!(backup_secret_path(&dir.path().join("copy.db")), saved);
        a.save_key(&saved).expect("saved");
        assert!(a.save_key(&saved).is_err(), "never overwritten");
        let elsewhere = dir.path().join("restored");
        std::fs::create_dir(&elsewhere).expect("dir");
        std::fs::copy(&saved, secret_path(&elsewhere.join("herald.db"))).expect("restore");
        let c = Signer::load(None, Some(&elsewhere.join("herald.db"))).expect("restored key");
        assert_eq!(c.verify("x", &a.sign("x", 7)), Some(7));
        assert_ne!(random_token(), random_token());
    }

    #[test]
    fn a_database_without_a_file_needs_the_key_configured() {
        let err = Signer::load(None, None).expect_err("no file to keep a key beside");
        assert!(
            err.to_string().contains("HERALD_SECRET is required"),
            "{err}"
        );
        let key = SecretString::from("k".repeat(40));
        assert!(Signer::load(Some(&key), None).is_ok());
    }
}
