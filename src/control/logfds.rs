//! Log files opened by someone else: the privileged supervisor opens every log file as root (they
//! may live in root-only directories) and hands the descriptors to the serving process, which
//! installs them here. `runtime::log`'s `open_log_file` asks [`lookup`] first, so error logs,
//! access logs and SIGUSR1 reopening all use the handed descriptors without knowing about them.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// `None` until the serving process receives its first set (single-process mode never does).
static HANDED: Mutex<Option<HashMap<PathBuf, File>>> = Mutex::new(None);

/// Replaces the handed set (on start, reload and reopen: each brings freshly opened files).
pub fn install(files: Vec<(PathBuf, File)>) {
    let mut g = HANDED.lock().unwrap_or_else(|p| p.into_inner());
    *g = Some(files.into_iter().collect());
}

/// A new descriptor for `path` when one was handed over (`dup`), else `None`: open it yourself.
pub fn lookup(path: &Path) -> Option<io::Result<File>> {
    let g = HANDED.lock().unwrap_or_else(|p| p.into_inner());
    g.as_ref()?.get(path).map(File::try_clone)
}
