//! `control::reload::reload` with real sockets and a real configuration file, through a small `Host`
//! standing in for the runtime: the "configuration" is lines `listen ADDR` and `body TEXT`; each
//! listener thread answers every connection with the `body` of the *current* Live.
//!
//! Checks: a kept socket is the same socket (clients connecting during the reload are never refused),
//! the new body is served after the swap, a broken file logs `[emerg] ... in FILE:LINE` and changes
//! nothing, a port is added and another removed (it then refuses connections), a bind conflict keeps
//! everything as it was.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use arc_swap::ArcSwap;

use nginx_rs::conf::Level;
use nginx_rs::conf::{ConfError, Span};
use nginx_rs::control::listen::ListenerSet;
use nginx_rs::control::reload::{reload, Host, Outcome};
use nginx_rs::plan::ListenAddr;
use nginx_rs::runtime::log::{ErrorLog, ErrorSink};

struct Live {
    body: String,
}

struct Conf {
    listens: Vec<ListenAddr>,
    body: String,
}

/// A listening socket with its accept thread; dropping it stops the thread and closes the socket.
struct Served {
    listener: Arc<TcpListener>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        if let Ok(a) = self.listener.local_addr() {
            let _ = TcpStream::connect(a);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct TestHost {
    path: PathBuf,
    live: Arc<ArcSwap<Live>>,
}

impl Host for TestHost {
    type Plan = Conf;
    type Live = Live;
    type Listener = Served;

    fn load(&mut self) -> Result<Conf, ConfError> {
        let text =
            std::fs::read_to_string(&self.path).map_err(|e| ConfError::nowhere(e.to_string()))?;
        let file: Arc<str> = self.path.display().to_string().into();
        let mut conf = Conf {
            listens: Vec::new(),
            body: String::new(),
        };
        for (i, line) in text.lines().enumerate() {
            let span = Span::new(file.clone().into(), i as u32 + 1, 1);
            match line.split_once(' ') {
                Some(("listen", a)) => {
                    conf.listens.push(ListenAddr::Inet(a.parse().map_err(|_| {
                        ConfError::emerg(format!("invalid listen \"{a}\""), &span)
                    })?))
                }
                Some(("body", b)) => conf.body = b.to_string(),
                _ => {
                    let word = line.split(' ').next().unwrap_or("");
                    return Err(ConfError::emerg(
                        format!("unknown directive \"{word}\""),
                        &span,
                    ));
                }
            }
        }
        Ok(conf)
    }

    fn listen_addrs(&self, plan: &Conf) -> Vec<ListenAddr> {
        plan.listens.clone()
    }

    fn bind(&mut self, addr: &ListenAddr, _plan: &Conf) -> io::Result<Served> {
        match addr {
            ListenAddr::Inet(a) => serve(TcpListener::bind(a)?, Arc::clone(&self.live)),
            ListenAddr::Unix(_) => Err(io::ErrorKind::Unsupported.into()),
        }
    }

    fn build(&mut self, plan: Conf, _old: &Live) -> Result<Live, ConfError> {
        Ok(Live { body: plan.body })
    }

    fn start(&mut self, _addr: &ListenAddr, _listener: &Served) {}
}

fn serve(l: TcpListener, live: Arc<ArcSwap<Live>>) -> io::Result<Served> {
    let listener = Arc::new(l);
    let stop = Arc::new(AtomicBool::new(false));
    let (l2, s2) = (Arc::clone(&listener), Arc::clone(&stop));
    let thread = std::thread::spawn(move || {
        while let Ok((mut c, _)) = l2.accept() {
            if s2.load(Ordering::SeqCst) {
                return;
            }
            // Each connection answers from the Live current at accept time.
            let body = live.load().body.clone();
            let _ = c.write_all(body.as_bytes());
        }
    });
    Ok(Served {
        listener,
        stop,
        thread: Some(thread),
    })
}

fn get(addr: SocketAddr) -> io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn inet(a: SocketAddr) -> ListenAddr {
    ListenAddr::Inet(a)
}

#[test]
fn reload_keeps_adds_removes_and_survives_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("test.conf");
    let errlog_path = dir.path().join("error.log");
    let errlog = ErrorLog::new(vec![
        ErrorSink::file(&errlog_path, Level::Notice).expect("open")
    ]);
    let (a, b) = (free_addr(), free_addr());
    std::fs::write(&conf, format!("listen {a}\nlisten {b}\nbody one\n")).expect("write");

    let live = Arc::new(ArcSwap::from_pointee(Live {
        body: String::new(),
    }));
    let mut host = TestHost {
        path: conf.clone(),
        live: Arc::clone(&live),
    };
    // Start-up is a reload from an empty set.
    let mut set: ListenerSet<Served> = ListenerSet::default();
    assert!(matches!(
        reload(&mut host, &live, &mut set, &errlog),
        Outcome::Reloaded { .. }
    ));
    assert_eq!(get(a).expect("a"), "one");
    assert_eq!(get(b).expect("b"), "one");

    // Clients hammer the kept port `a` during the reloads below: not one may be refused.
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = Arc::clone(&stop);
    let load = std::thread::spawn(move || {
        let (mut ok, mut failed) = (0u32, Vec::new());
        while !s2.load(Ordering::SeqCst) {
            match get(a) {
                Ok(body) if body == "one" || body == "two" => ok += 1,
                other => failed.push(format!("{other:?}")),
            }
        }
        (ok, failed)
    });

    // Swap: keep a, drop b, add c, new body.
    let c = free_addr();
    std::fs::write(&conf, format!("listen {a}\nlisten {c}\nbody two\n")).expect("write");
    match reload(&mut host, &live, &mut set, &errlog) {
        Outcome::Reloaded { diff, removed } => {
            assert_eq!(diff.keep, [inet(a)]);
            assert_eq!(diff.add, [inet(c)]);
            assert_eq!(diff.remove, [inet(b)]);
            drop(removed); // closes b
        }
        Outcome::Failed(e) => panic!("reload failed: {e}"),
    }
    assert_eq!(get(a).expect("a"), "two");
    assert_eq!(get(c).expect("c"), "two");
    assert!(get(b).is_err(), "removed port still accepts");

    // A broken line: [emerg] with FILE:LINE, old config keeps serving.
    std::fs::write(
        &conf,
        format!("listen {a}\nlisten {c}\nbody three\nbogus;\n"),
    )
    .expect("write");
    assert!(matches!(
        reload(&mut host, &live, &mut set, &errlog),
        Outcome::Failed(_)
    ));
    assert_eq!(get(a).expect("a"), "two");
    let log = std::fs::read_to_string(&errlog_path).expect("error log");
    let want = format!("[emerg] {}#", std::process::id());
    let line = log
        .lines()
        .find(|l| l.contains(&want))
        .expect("an [emerg] line");
    assert!(
        line.ends_with(&format!(
            ": unknown directive \"bogus;\" in {}:4",
            conf.display()
        )),
        "{line}"
    );

    // A new port that is taken: bind() error, nothing changes (c still served, a still served).
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let t = taken.local_addr().expect("addr");
    std::fs::write(&conf, format!("listen {a}\nlisten {t}\nbody four\n")).expect("write");
    match reload(&mut host, &live, &mut set, &errlog) {
        Outcome::Failed(e) => assert_eq!(
            e,
            format!("bind() to {t} failed (98: Address already in use)")
        ),
        Outcome::Reloaded { .. } => panic!("reload with a taken port succeeded"),
    }
    assert_eq!(get(c).expect("c"), "two");

    stop.store(true, Ordering::SeqCst);
    let (ok, failed) = load.join().expect("load thread");
    assert!(
        failed.is_empty(),
        "{} failed requests during reloads: {failed:?}",
        failed.len()
    );
    assert!(ok > 0);
}
