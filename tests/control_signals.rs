//! Real processes and real signals: a child process (this test binary, re-executed in "child mode")
//! binds a listener, writes its pid file, installs the signal loop and reports each event; the parent
//! drives it with `control::send_signal` exactly as `nginx-rs -s ...` would.
//!
//! Also `-s` failure cases with nginx's messages (missing, invalid and stale pid files).

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use nginx_rs::control::pid::PidFile;
use nginx_rs::control::signals::{Event, Signals};
use nginx_rs::control::{send_signal, Signal};
use nginx_rs::runtime::log::LogWriter;

const CHILD_ENV: &str = "NGINX_RS_TEST_SIGNAL_CHILD";

/// The child's main: runs only when re-executed by a test with `CHILD_ENV` set to a directory.
#[test]
fn signal_child_entry() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let code = rt.block_on(async move {
        let mut signals = Signals::install().expect("install signals");
        // As nginx-rs does: listeners first, then the pid file.
        let _listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let writer = LogWriter::new().expect("log writer");
        let access = writer
            .open(&dir.join("access.log"), None, None)
            .expect("open access log");
        let _pid = PidFile::create(&dir.join("test.pid")).expect("pid file");
        let mut events = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("events"))
            .expect("events file");
        loop {
            let ev = signals.recv().await;
            match ev {
                Event::Reopen => {
                    assert!(writer.reopen().is_empty());
                    access.write(b"after reopen\n".to_vec());
                    writer.flush();
                }
                Event::Reload => {
                    access.write(b"before reopen\n".to_vec());
                    writer.flush();
                }
                Event::GracefulStop | Event::FastStop => {}
            }
            writeln!(events, "{ev:?}").expect("record event");
            match ev {
                Event::GracefulStop => return 0,
                Event::FastStop => return 3,
                _ => {}
            }
        }
    });
    // Leaving through process::exit would skip the pid file's Drop; `block_on` returned, so it ran.
    std::process::exit(code);
}

struct ChildProc {
    child: Child,
    dir: tempfile::TempDir,
}

impl ChildProc {
    fn spawn() -> ChildProc {
        let dir = tempfile::tempdir().expect("tempdir");
        let child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "signal_child_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .spawn()
            .expect("spawn child");
        let c = ChildProc { child, dir };
        wait_for(|| c.pid_path().exists(), "pid file");
        c
    }

    fn pid_path(&self) -> PathBuf {
        self.dir.path().join("test.pid")
    }

    fn events(&self) -> String {
        fs::read_to_string(self.dir.path().join("events")).unwrap_or_default()
    }

    fn wait_exit(&mut self) -> ExitStatus {
        for _ in 0..400 {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("child did not exit");
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` (up to 10 s); the assertion is on the condition, never on the time it took.
fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    for _ in 0..400 {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn reload_reopen_quit_through_the_pid_file() {
    let mut c = ChildProc::spawn();
    let pid = fs::read_to_string(c.pid_path()).expect("pid file");
    assert_eq!(pid, format!("{}\n", c.child.id()));

    send_signal(&c.pid_path(), Signal::Reload).expect("-s reload");
    wait_for(|| c.events() == "Reload\n", "Reload event");

    // logrotate: rename, then reopen; the old file keeps the old lines, a new file is created.
    let log = c.dir.path().join("access.log");
    let rotated = c.dir.path().join("access.log.1");
    fs::rename(&log, &rotated).expect("rotate");
    send_signal(&c.pid_path(), Signal::Reopen).expect("-s reopen");
    wait_for(|| c.events() == "Reload\nReopen\n", "Reopen event");
    assert_eq!(
        fs::read_to_string(&rotated).expect("rotated"),
        "before reopen\n"
    );
    assert_eq!(fs::read_to_string(&log).expect("new log"), "after reopen\n");

    send_signal(&c.pid_path(), Signal::Quit).expect("-s quit");
    let st = c.wait_exit();
    assert_eq!(st.code(), Some(0));
    assert!(c.events().ends_with("GracefulStop\n"));
    assert!(!c.pid_path().exists(), "pid file removed on exit");
}

#[test]
fn stop_is_a_fast_stop() {
    let mut c = ChildProc::spawn();
    send_signal(&c.pid_path(), Signal::Stop).expect("-s stop");
    assert_eq!(c.wait_exit().code(), Some(3));
    assert_eq!(c.events(), "FastStop\n");
    assert!(!c.pid_path().exists());
}

#[test]
fn sigint_is_a_fast_stop() {
    let mut c = ChildProc::spawn();
    // SAFETY: plain kill(2) to our own child.
    assert_eq!(unsafe { libc::kill(c.child.id() as i32, libc::SIGINT) }, 0);
    assert_eq!(c.wait_exit().code(), Some(3));
    assert_eq!(c.events(), "FastStop\n");
}

fn err_text(path: &Path, sig: Signal) -> String {
    format!(
        "nginx-rs: {}",
        send_signal(path, sig).expect_err("must fail")
    )
}

#[test]
fn missing_pid_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("nginx-rs.pid");
    assert_eq!(
        err_text(&p, Signal::Reload),
        format!(
            "nginx-rs: [error] open() \"{}\" failed (2: No such file or directory)",
            p.display()
        )
    );
}

#[test]
fn invalid_pid_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("nginx-rs.pid");
    for (content, shown) in [("abc\n", "abc"), ("", ""), (" 12 \n", " 12 "), ("0\n", "0")] {
        fs::write(&p, content).expect("write");
        assert_eq!(
            err_text(&p, Signal::Quit),
            format!(
                "nginx-rs: [error] invalid PID number \"{shown}\" in \"{}\"",
                p.display()
            )
        );
    }
    let d = dir.path().join("d");
    fs::create_dir(&d).expect("dir");
    assert_eq!(
        err_text(&d, Signal::Stop),
        format!(
            "nginx-rs: [crit] pread() \"{}\" failed (21: Is a directory)",
            d.display()
        )
    );
}

#[test]
fn stale_pid_file() {
    // A pid that certainly has no process: a child that has exited and been reaped.
    let mut gone = Command::new("true").spawn().expect("spawn true");
    let pid = gone.id();
    gone.wait().expect("wait");
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("nginx-rs.pid");
    fs::write(&p, format!("{pid}\r\n")).expect("write");
    assert_eq!(
        err_text(&p, Signal::Reload),
        format!("nginx-rs: [alert] kill({pid}, 1) failed (3: No such process)")
    );
}
