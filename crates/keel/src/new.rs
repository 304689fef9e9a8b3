//! `keel new <dir>`: writes a new project on Keel — a schema with one table, a query and a
//! mutation with their test, a page whose loader reads the query, and a README — that depends on
//! Keel by path to this checkout and is its own Cargo workspace.

use std::path::{Path, PathBuf};

/// The project's files: where each goes and its template (`{{name}}`, `{{keel_path}}`,
/// `{{keel_crate}}` filled in).
const FILES: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../templates/new/Cargo.toml.tmpl"),
    ),
    ("README.md", include_str!("../templates/new/README.md.tmpl")),
    (
        ".gitignore",
        include_str!("../templates/new/gitignore.tmpl"),
    ),
    ("src/main.rs", include_str!("../templates/new/main.rs.tmpl")),
    ("src/api.rs", include_str!("../templates/new/api.rs.tmpl")),
    (
        "src/functions.rs",
        include_str!("../templates/new/functions.rs.tmpl"),
    ),
    ("src/web.rs", include_str!("../templates/new/web.rs.tmpl")),
];

/// The Keel checkout this binary was built from (the default of `keel new --keel-path`).
pub fn default_keel_path() -> PathBuf {
    let keel_crate = Path::new(env!("CARGO_MANIFEST_DIR"));
    keel_crate
        .parent()
        .and_then(Path::parent)
        .unwrap_or(keel_crate)
        .to_path_buf()
}

/// What `keel new` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProject {
    /// Where to write the project: a new or empty directory. Its name is the package's.
    pub dir: PathBuf,
    /// The Keel checkout the project depends on by path.
    pub keel_path: PathBuf,
}

/// Why `keel new` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum NewError {
    /// The directory exists and has files in it.
    #[error("keel new: `{0}` is not empty; choose a new or empty directory")]
    NotEmpty(PathBuf),
    /// The path exists and is not a directory.
    #[error("keel new: `{0}` exists and is not a directory")]
    NotADirectory(PathBuf),
    /// The directory's name cannot be a Cargo package name.
    #[error(
        "keel new: `{0}` cannot name a Cargo package (use ASCII letters, digits, `-` and `_`, starting with a letter)"
    )]
    BadName(String),
    /// `--keel-path` is not a Keel checkout.
    #[error("keel new: --keel-path `{0}` is not a Keel checkout (no crates/keel/Cargo.toml in it)")]
    NotKeelCheckout(PathBuf),
    /// A path that is not UTF-8 cannot be written into `Cargo.toml`.
    #[error("keel new: `{0}` is not a UTF-8 path")]
    NotUtf8(PathBuf),
    /// Reading or writing a file failed.
    #[error("keel new: {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

impl NewProject {
    /// Writes the project; returns the files written, relative to [`NewProject::dir`]. Nothing
    /// is written when the directory is not empty, its name is not a package name or
    /// `keel_path` is not a Keel checkout.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let project = keel::NewProject { dir: dir.path().join("myapp"), keel_path: keel::default_keel_path() };
    /// let files = project.create()?;
    /// assert!(files.iter().any(|f| f == "Cargo.toml"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(&self) -> Result<Vec<String>, NewError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| NewError::Io { path, source }
        };
        let dir = &self.dir;
        if dir.exists() {
            if !dir.is_dir() {
                return Err(NewError::NotADirectory(dir.clone()));
            }
            if std::fs::read_dir(dir).map_err(io(dir))?.next().is_some() {
                return Err(NewError::NotEmpty(dir.clone()));
            }
        }
        let name = package_name(dir)?;
        let keel_path = std::path::absolute(&self.keel_path).map_err(io(&self.keel_path))?;
        if !keel_path.join("crates/keel/Cargo.toml").is_file() {
            return Err(NewError::NotKeelCheckout(self.keel_path.clone()));
        }
        let keel_text = keel_path
            .to_str()
            .ok_or_else(|| NewError::NotUtf8(keel_path.clone()))?;
        let keel_crate = keel_path.join("crates/keel");
        let keel_crate = toml_string(
            keel_crate
                .to_str()
                .ok_or_else(|| NewError::NotUtf8(keel_crate.clone()))?,
        );
        let mut written = Vec::new();
        std::fs::create_dir_all(dir.join("src")).map_err(io(dir))?;
        for (file, template) in FILES {
            let text = template
                .replace("{{name}}", &name)
                .replace("{{keel_crate}}", &keel_crate)
                .replace("{{keel_path}}", keel_text);
            let path = dir.join(file);
            std::fs::write(&path, text).map_err(io(&path))?;
            written.push((*file).to_owned());
        }
        // Keel's own lock file, so the project builds (offline too) with the versions Keel
        // was tested with; Cargo drops what the project does not use.
        let lock = keel_path.join("Cargo.lock");
        if lock.is_file() {
            std::fs::copy(&lock, dir.join("Cargo.lock")).map_err(io(&lock))?;
            written.push("Cargo.lock".to_owned());
        }
        tracing::info!(dir = %dir.display(), keel = %keel_path.display(), "new project written");
        Ok(written)
    }
}

/// The package name: the directory's name, if Cargo accepts it.
fn package_name(dir: &Path) -> Result<String, NewError> {
    let absolute = std::path::absolute(dir).map_err(|source| NewError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let name = absolute
        .components()
        .next_back()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.len() <= 64;
    if valid {
        Ok(name)
    } else {
        Err(NewError::BadName(name))
    }
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_are_checked() {
        assert_eq!(
            package_name(Path::new("/tmp/my-app_2")).unwrap(),
            "my-app_2"
        );
        for bad in ["/tmp/2app", "/tmp/my app", "/tmp/é", "/tmp/a\"b", "/"] {
            assert!(
                matches!(package_name(Path::new(bad)), Err(NewError::BadName(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string(r#"/a "b"\c"#), r#""/a \"b\"\\c""#);
        assert_eq!(toml_string("a\nb"), "\"a\\u000Ab\"");
    }
}
