//! The pid file: written once the listeners are bound (so `-s` can only reach a process that is
//! serving), removed when the process exits.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::errno_text;

/// `open() "/run/nginx-rs.pid" failed (13: Permission denied)` and friends, nginx's wording.
#[derive(Debug)]
pub struct PidFileError {
    pub call: &'static str,
    pub path: PathBuf,
    pub error: io::Error,
}

impl std::fmt::Display for PidFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}() \"{}\" failed {}",
            self.call,
            self.path.display(),
            errno_text(&self.error)
        )
    }
}

impl std::error::Error for PidFileError {}

/// A written pid file; removing it is the `Drop`, so every exit path (normal, error, signal stop that
/// unwinds `main`) cleans up.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    pid: u32,
}

impl PidFile {
    /// Writes `PID\n` (nginx's content) with mode 0644, replacing a stale file.
    pub fn create(path: &Path) -> Result<PidFile, PidFileError> {
        Self::create_with(path, std::process::id())
    }

    pub fn create_with(path: &Path, pid: u32) -> Result<PidFile, PidFileError> {
        let err = |call, error| PidFileError {
            call,
            path: path.to_path_buf(),
            error,
        };
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(path)
            .map_err(|e| err("open", e))?;
        f.write_all(format!("{pid}\n").as_bytes())
            .map_err(|e| err("write", e))?;
        Ok(PidFile {
            path: path.to_path_buf(),
            pid,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the file now (also done on drop). Leaves it alone if another process has since
    /// written its own pid there (e.g. a second instance started by mistake).
    pub fn remove(self) {
        drop(self)
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let mine = fs::read_to_string(&self.path)
            .map(|s| s.trim_end() == self.pid.to_string())
            .unwrap_or(false);
        if mine {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_and_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.pid");
        fs::write(&p, "999\n").expect("stale file");
        let pf = PidFile::create_with(&p, 4242).expect("create");
        assert_eq!(fs::read_to_string(&p).expect("read"), "4242\n");
        drop(pf);
        assert!(!p.exists());
    }

    #[test]
    fn not_removed_when_taken_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.pid");
        let pf = PidFile::create_with(&p, 4242).expect("create");
        fs::write(&p, "77\n").expect("overwrite");
        drop(pf);
        assert!(p.exists());
    }

    #[test]
    fn open_failure_wording() {
        let e = PidFile::create(Path::new("/nonexistent-dir/x.pid")).expect_err("must fail");
        assert_eq!(
            e.to_string(),
            "open() \"/nonexistent-dir/x.pid\" failed (2: No such file or directory)"
        );
    }
}
