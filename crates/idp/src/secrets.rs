//! The idp's secret files in `<data_dir>/idp/`: `secret_key` (the `sk_test_…` Backend-API
//! key) made on first start, and how a secret file is agreed with the other processes on a
//! shared store (the first stored wins; each process's file is rewritten to hold it).

use std::path::Path;

use crate::error::IdpError;
use crate::store::Store;

/// The secret in the file at `path` (made by `load_or_create` on first start), agreed with the
/// other processes sharing `store`: the first one stored wins, and this process's file is
/// rewritten to hold it (the file stays where tools and the CLI read it).
pub(crate) fn share_secret_file(
    store: &Store,
    path: &Path,
    load_or_create: impl Fn(&Path) -> Result<String, IdpError>,
) -> Result<String, IdpError> {
    let local = load_or_create(path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let agreed = store.agree_secret(&name, &local)?;
    if agreed != local {
        write_secret(path, &agreed)?;
        tracing::info!(file = %path.display(), "took the idp's shared {name} from the database");
    }
    Ok(agreed)
}

/// The `sk_…` Backend-API key in the file at `path`, created (mode 0600) on first start.
pub(crate) fn load_or_create_secret_key(path: &Path) -> Result<String, IdpError> {
    let io_err = |source| IdpError::DataDir {
        path: path.to_owned(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(s) if s.trim().starts_with("sk_") => return Ok(s.trim().to_owned()),
        Ok(_) => {
            return Err(IdpError::Config(format!(
                "{} does not hold an sk_… secret key",
                path.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    let secret = format!("sk_test_{}", crate::ids::random_chars(40));
    write_secret(path, &secret)?;
    Ok(secret)
}

/// Writes a secret file (mode 0600), replacing any earlier one atomically.
fn write_secret(path: &Path, secret: &str) -> Result<(), IdpError> {
    let io_err = |source| IdpError::DataDir {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{secret}\n")).map_err(io_err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(io_err)?;
    }
    std::fs::rename(&tmp, path).map_err(io_err)?;
    Ok(())
}
