//! `include`: path resolution, glob expansion and file reading, with nginx's error wordings.
//!
//! nginx (`ngx_conf_include`) joins a relative path to the conf prefix, treats a name containing
//! `*`, `?` or `[` as a glob (expanded by glob(3): sorted bytewise in nginx's C locale, hidden
//! files only matched by a literal dot, no match is fine), and otherwise opens the file, failing
//! with `open() "PATH" failed (ERRNO: TEXT)`.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::error::{ConfError, Level, Origin};

/// An include failure before it is given a place (the `include` line, or nowhere for `-c`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileError {
    pub level: Level,
    pub message: String,
}

impl FileError {
    pub fn into_error(self, origin: Origin) -> ConfError {
        ConfError {
            level: self.level,
            message: self.message,
            origin,
            hints: Vec::new(),
        }
    }
}

/// `(2: No such file or directory)`, nginx's errno suffix.
pub fn errno_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let full = io::Error::from_raw_os_error(code).to_string();
            let text = full
                .strip_suffix(&format!(" (os error {code})"))
                .unwrap_or(&full);
            format!("({code}: {text})")
        }
        None => format!("({e})"),
    }
}

/// Files already read by someone else (the privileged supervisor): path -> bytes.
pub type FileMap = std::collections::HashMap<PathBuf, Vec<u8>>;

thread_local! {
    /// While set (see [`with_files`]), configuration and certificate files come from this map
    /// instead of the file system.
    static MEMORY: std::cell::RefCell<Option<std::sync::Arc<FileMap>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` with every file read (the configuration, its includes, globs, certificates) served
/// from `files`: the unprivileged serving process compiles the bytes the supervisor read as root.
/// A path missing from the map reads as `ENOENT`.
pub fn with_files<R>(files: std::sync::Arc<FileMap>, f: impl FnOnce() -> R) -> R {
    let prev = MEMORY.with(|m| m.replace(Some(files)));
    let out = f();
    MEMORY.with(|m| *m.borrow_mut() = prev);
    out
}

fn memory() -> Option<std::sync::Arc<FileMap>> {
    MEMORY.with(|m| m.borrow().clone())
}

/// Reads a file from the in-memory set when one is installed ([`with_files`]), else from disk.
pub fn read_file(path: &Path) -> io::Result<Vec<u8>> {
    match memory() {
        Some(m) => m
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT)),
        None => std::fs::read(path),
    }
}

/// Reads a whole configuration file the way nginx's `open()` + `pread()` would fail.
pub fn read_conf_file(path: &Path, name: &str) -> Result<Vec<u8>, FileError> {
    read_file(path).map_err(|e| file_error(name, &e))
}

fn file_error(name: &str, e: &io::Error) -> FileError {
    if e.raw_os_error() == Some(libc::EISDIR) {
        // open() succeeds on a directory in C; the first read fails.
        FileError {
            level: Level::Crit,
            message: format!("pread() \"{name}\" failed {}", errno_text(e)),
        }
    } else {
        FileError {
            level: Level::Emerg,
            message: format!("open() \"{name}\" failed {}", errno_text(e)),
        }
    }
}

/// Opens a configuration file to be read as it is tokenized: its first `head` bytes (so that
/// opening fails as [`read_conf_file`] does) and the rest as a stream. Files served from memory
/// ([`with_files`]) come whole.
pub fn open_conf_stream(
    path: &Path,
    name: &str,
    head: usize,
) -> Result<(Vec<u8>, Box<dyn io::Read>), FileError> {
    use io::Read;
    if memory().is_some() {
        return read_conf_file(path, name).map(|t| (t, Box::new(io::empty()) as Box<dyn Read>));
    }
    let mut file = std::fs::File::open(path).map_err(|e| file_error(name, &e))?;
    let mut first = Vec::with_capacity(head);
    (&mut file)
        .take(head as u64)
        .read_to_end(&mut first)
        .map_err(|e| file_error(name, &e))?;
    Ok((first, Box::new(file)))
}

/// What identifies a file for cycle detection: its canonical path when it exists.
pub fn identity(path: &Path) -> PathBuf {
    if memory().is_some() {
        return path.to_path_buf();
    }
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Resolves an `include` argument to the files to read, in nginx's order.
pub fn expand(arg: &str, conf_prefix: &Path) -> Result<Vec<PathBuf>, FileError> {
    let full = if arg.starts_with('/') {
        PathBuf::from(arg)
    } else {
        conf_prefix.join(arg)
    };
    if !arg.contains(['*', '?', '[']) {
        return Ok(vec![full]);
    }
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let pattern = full.to_string_lossy();
    if let Some(m) = memory() {
        // The supervisor read exactly what the glob matched then: match against those paths.
        let mut found: Vec<PathBuf> = match glob::Pattern::new(&pattern) {
            Ok(p) => m
                .keys()
                .filter(|k| p.matches_path_with(k, options))
                .cloned()
                .collect(),
            Err(_) => Vec::new(),
        };
        found.sort_by(|a, b| a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes()));
        return Ok(found);
    }
    let mut found: Vec<PathBuf> = match glob::glob_with(&pattern, options) {
        // Unreadable directories are skipped, like glob(3) without GLOB_ERR.
        Ok(paths) => paths.filter_map(Result::ok).collect(),
        // glob(3) takes a malformed bracket literally; a file named like that is vanishingly
        // rare, so a malformed pattern simply matches nothing (and nothing is an accepted result).
        Err(_) => Vec::new(),
    };
    found.sort_by(|a, b| a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes()));
    Ok(found)
}

// Unit tests only: their unwraps run on fixed inputs, never on config or request input,
// and a panic there is a failed test.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_formatting() {
        let e = io::Error::from_raw_os_error(2);
        assert_eq!(errno_text(&e), "(2: No such file or directory)");
    }

    #[test]
    fn missing_file_message() {
        let e = read_conf_file(Path::new("/nonexistent/x.conf"), "/nonexistent/x.conf");
        assert_eq!(
            e.unwrap_err().message,
            "open() \"/nonexistent/x.conf\" failed (2: No such file or directory)"
        );
    }

    #[test]
    fn glob_is_sorted_and_skips_hidden() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["b.conf", "a-b.conf", "a.conf", ".hidden.conf", "c.txt"] {
            std::fs::write(dir.path().join(n), "").unwrap();
        }
        let got = expand("*.conf", dir.path()).unwrap();
        let names: Vec<_> = got
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a-b.conf", "a.conf", "b.conf"]);
        assert!(expand("nothing*.conf", dir.path()).unwrap().is_empty());
        assert_eq!(
            expand("/abs/x.conf", dir.path()).unwrap(),
            [PathBuf::from("/abs/x.conf")]
        );
    }
}
