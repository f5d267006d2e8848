//! Helpers shared by the conf tests: running real nginx on a configuration and reading its verdict.

use std::fs;
use std::path::Path;
use std::process::Command;

pub const NGINX: &str = "/usr/sbin/nginx";

pub fn nginx_installed() -> bool {
    Path::new(NGINX).exists()
}

/// Writes `wrapper` to `tmp/wrap.conf`, runs `nginx -t` on it (prefix and conf prefix `tmp/`) and
/// returns nginx's first error as `[level] MESSAGE[ in FILE:LINE]` with `tmp/` removed from paths,
/// or `None` when the test passed.
pub fn nginx_test(tmp: &Path, wrapper: &str) -> Option<String> {
    let wrap = tmp.join("wrap.conf");
    fs::write(&wrap, wrapper).expect("tmp writable");
    fs::create_dir_all(tmp.join("logs")).expect("logs dir");
    let prefix = format!("{}/", tmp.display());
    let globals = format!("pid {}/nginx.pid;", tmp.display());
    let out = Command::new(NGINX)
        .args(["-t", "-q", "-e", "stderr", "-p", &prefix, "-c"])
        .arg(&wrap)
        .args(["-g", &globals])
        .output()
        .expect("nginx runs");
    if out.status.success() {
        return None;
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("] ") && !l.contains("[warn]") && !l.contains("[notice]"))
        .unwrap_or("nginx failed without an error line");
    Some(normalize(line).replace(&prefix, ""))
}

/// `2026/01/01 00:00:00 [emerg] 123#123: MESSAGE` -> `[emerg] MESSAGE`.
fn normalize(line: &str) -> String {
    let Some(b) = line.find('[') else {
        return line.to_string();
    };
    let Some(e) = line[b..].find(']').map(|e| b + e + 1) else {
        return line.to_string();
    };
    let rest = &line[e..];
    let msg = match rest.split_once(": ") {
        Some((pid, m)) if pid.contains('#') => m,
        _ => rest.trim_start(),
    };
    format!("{} {msg}", &line[b..e])
}
