//! [`AdminKey`]: the deployment's admin key, which operators' tools (the execution log today;
//! the dashboard, `keel run`, export and import later) send as `Authorization: Convex <key>`,
//! the header Convex's CLI sends.
//!
//! `keel` generates one at the first start of a backend and keeps it in `<data dir>/admin_key`
//! (mode 0600), or takes it from `--admin-key` / `KEEL_ADMIN_KEY`; every node of a cluster is
//! given the same key. A key is compared in constant time: the SHA-256 digests of both keys are
//! compared byte by byte without an early exit, so neither the position of the first wrong byte
//! nor the key's length shows in the time an answer takes.

use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

/// The prefix of a generated key (`keel|<64 hex digits>`), like Convex's `<instance>|<secret>`.
const GENERATED_PREFIX: &str = "keel|";
/// The fewest characters a key given explicitly may have.
pub const MIN_ADMIN_KEY_LEN: usize = 32;
/// The most characters a key may have (a header line, not a file).
const MAX_ADMIN_KEY_LEN: usize = 1024;

/// The deployment's admin key.
///
/// ```
/// use keel_backend_core::AdminKey;
/// let key = AdminKey::generate();
/// assert!(key.verify(key.expose()));
/// assert!(!key.verify("keel|not-the-key"));
/// let given: AdminKey = "a-key-shared-by-every-node-of-the-cluster".parse().unwrap();
/// assert!(given.verify("a-key-shared-by-every-node-of-the-cluster"));
/// ```
#[derive(Clone)]
pub struct AdminKey {
    key: String,
    digest: [u8; 32],
}

impl std::fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminKey(…)")
    }
}

/// Why a key was refused, or could not be read or stored.
#[derive(Debug, thiserror::Error)]
pub enum AdminKeyError {
    /// A key too short, too long, or with characters outside printable ASCII (or spaces).
    #[error(
        "an admin key must be {MIN_ADMIN_KEY_LEN} to {MAX_ADMIN_KEY_LEN} printable ASCII \
         characters without spaces"
    )]
    Malformed,
    /// The key file could not be read or written.
    #[error("the admin key file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

impl AdminKeyError {
    /// The short code of the error.
    pub fn code(&self) -> &'static str {
        match self {
            AdminKeyError::Malformed => "MalformedAdminKey",
            AdminKeyError::File { .. } => "AdminKeyFile",
        }
    }
}

impl std::str::FromStr for AdminKey {
    type Err = AdminKeyError;

    fn from_str(key: &str) -> Result<AdminKey, AdminKeyError> {
        let well_formed = (MIN_ADMIN_KEY_LEN..=MAX_ADMIN_KEY_LEN).contains(&key.len())
            && key.bytes().all(|b| b.is_ascii_graphic());
        if !well_formed {
            return Err(AdminKeyError::Malformed);
        }
        Ok(AdminKey {
            key: key.to_owned(),
            digest: Sha256::digest(key.as_bytes()).into(),
        })
    }
}

impl AdminKey {
    /// A new random key: `keel|` and 256 random bits in hex.
    pub fn generate() -> AdminKey {
        let secret: [u8; 32] = rand::random();
        format!("{GENERATED_PREFIX}{}", hex::encode(secret))
            .parse()
            .expect("a generated key is well formed")
    }

    /// The key in `path`, or a new one written there (readable by its owner only) when the
    /// file does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<AdminKey, AdminKeyError> {
        let file_error = |source| AdminKeyError::File {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => return text.trim().parse(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(file_error(error)),
        }
        let key = AdminKey::generate();
        // Written whole under another name and renamed, so that a crash leaves no half key; the
        // file is created with mode 0600, never readable by others even for a moment.
        let tmp = path.with_extension("tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(file_error)?;
        file.write_all(format!("{}\n", key.key).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(file_error)?;
        std::fs::rename(&tmp, path).map_err(file_error)?;
        Ok(key)
    }

    /// The key itself, to print or to send.
    pub fn expose(&self) -> &str {
        &self.key
    }

    /// Whether `presented` is this key, in time independent of where they differ.
    pub fn verify(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.digest
            .iter()
            .zip(presented)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_differ_and_verify_only_themselves() {
        let (a, b) = (AdminKey::generate(), AdminKey::generate());
        assert_ne!(a.expose(), b.expose());
        assert!(a.verify(a.expose()));
        assert!(!a.verify(b.expose()));
        assert!(!a.verify(""));
        assert!(!a.verify(&a.expose()[1..]));
    }

    #[test]
    fn malformed_keys_are_refused() {
        for bad in [
            "short",
            "with a space in the middle of it 0123456789",
            "é".repeat(40).as_str(),
        ] {
            assert!(
                matches!(bad.parse::<AdminKey>(), Err(AdminKeyError::Malformed)),
                "{bad}"
            );
        }
        assert!("x".repeat(2000).parse::<AdminKey>().is_err());
    }

    #[test]
    fn the_key_file_is_created_once_private_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("admin_key");
        let first = AdminKey::load_or_create(&path).expect("created");
        let again = AdminKey::load_or_create(&path).expect("read back");
        assert_eq!(first.expose(), again.expose());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "bad key\n").expect("overwrite");
        assert!(matches!(
            AdminKey::load_or_create(&path),
            Err(AdminKeyError::Malformed)
        ));
    }
}
