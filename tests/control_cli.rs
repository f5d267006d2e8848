//! `nginx-rs -s ...` through the real binary: nginx's messages and exit code when the pid file is
//! missing or holds garbage (the wording checked against nginx 1.22's).

use std::process::Command;

fn run_s(dir: &std::path::Path, sig: &str, pid_file: &std::path::Path) -> (Option<i32>, String) {
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, format!("pid {};\nevents {{}}\n", pid_file.display()))
        .expect("write conf");
    let out = Command::new(env!("CARGO_BIN_EXE_nginx-rs"))
        .arg("-c")
        .arg(&conf)
        .arg("-s")
        .arg(sig)
        .output()
        .expect("run nginx-rs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn missing_and_invalid_pid_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid = dir.path().join("nginx-rs.pid");
    let (code, err) = run_s(dir.path(), "reload", &pid);
    assert_eq!(code, Some(1));
    assert_eq!(
        err,
        format!(
            "nginx-rs: [error] open() \"{}\" failed (2: No such file or directory)\n",
            pid.display()
        )
    );
    std::fs::write(&pid, "abc\n").expect("write pid");
    let (code, err) = run_s(dir.path(), "quit", &pid);
    assert_eq!(code, Some(1));
    assert_eq!(
        err,
        format!(
            "nginx-rs: [error] invalid PID number \"abc\" in \"{}\"\n",
            pid.display()
        )
    );
}

#[test]
fn signal_reaches_the_process_in_the_pid_file() {
    // A process that stops on SIGTERM: `-s stop` must deliver it.
    let mut sleeper = Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep");
    let dir = tempfile::tempdir().expect("tempdir");
    let pid = dir.path().join("nginx-rs.pid");
    std::fs::write(&pid, format!("{}\n", sleeper.id())).expect("write pid");
    let (code, err) = run_s(dir.path(), "stop", &pid);
    assert_eq!((code, err.as_str()), (Some(0), ""));
    let status = sleeper.wait().expect("wait");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGTERM));
}
