//! Command-line flags, nginx's: `-?`/`-h`, `-v`, `-V`, `-t`, `-T`, `-q`, `-s SIGNAL`, `-p PREFIX`,
//! `-e FILE|stderr`, `-c FILE`, `-g DIRECTIVES`; output in nginx's words, with `nginx-rs:` as the
//! program name.
//!
//! Paths: the prefix is `-p`, else [`DEFAULT_PREFIX`]. The configuration file is `-c`, else
//! `PREFIX/conf/nginx.conf`. A relative `-c` resolves against the prefix when `-p` was given (as
//! nginx does) and against the current directory otherwise, so `nginx-rs -t -c default.conf` checks
//! the file the user is looking at. `include` paths resolve against the directory of the
//! configuration file (nginx's conf prefix).
//!
//! Beyond nginx, an `[emerg]` line is followed by the offending source line with a caret under the
//! column, and a `did you mean` hint when one applies; these lines come after the nginx-format line
//! so tools that read the first line see exactly nginx's text.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

use crate::conf::parser::{self, LoadOptions, Parsed};
use crate::conf::{ConfError, SourceFile};
use crate::plan::{self, CompileOptions, Plan};

/// nginx-rs's compiled-in prefix (nginx's is `/usr/local/nginx/`).
pub const DEFAULT_PREFIX: &str = "/usr/local/nginx-rs/";
const NAME: &str = "nginx-rs";
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// nginx's standard modules that nginx-rs does not implement (for `-V`).
const WITHOUT: &[&str] = &[
    "http_charset_module",
    "http_gzip_module",
    "http_ssi_module",
    "http_userid_module",
    "http_auth_basic_module",
    "http_mirror_module",
    "http_autoindex_module",
    "http_geo_module",
    "http_split_clients_module",
    "http_referer_module",
    "http_fastcgi_module",
    "http_uwsgi_module",
    "http_scgi_module",
    "http_grpc_module",
    "http_memcached_module",
    "http_limit_conn_module",
    "http_limit_req_module",
    "http_empty_gif_module",
    "http_browser_module",
    "http_upstream_zone_module",
    "http-cache",
    "mail_pop3_module",
    "mail_imap_module",
    "mail_smtp_module",
    "stream_limit_conn_module",
    "stream_access_module",
    "stream_geo_module",
    "stream_map_module",
    "stream_split_clients_module",
    "stream_return_module",
    "stream_upstream_hash_module",
    "stream_upstream_least_conn_module",
    "stream_upstream_random_module",
    "stream_upstream_zone_module",
    "pcre-jit",
];

#[derive(Parser, Debug)]
#[command(
    name = "nginx-rs",
    disable_help_flag = true,
    disable_version_flag = true
)]
struct Flags {
    #[arg(short = 'h')]
    help: bool,
    #[arg(short = '?')]
    help2: bool,
    #[arg(short = 'v')]
    version: bool,
    #[arg(short = 'V')]
    configure: bool,
    #[arg(short = 't')]
    test: bool,
    #[arg(short = 'T')]
    dump: bool,
    #[arg(short = 'q')]
    quiet: bool,
    #[arg(short = 's')]
    signal: Option<String>,
    #[arg(short = 'p')]
    prefix: Option<PathBuf>,
    #[arg(short = 'e')]
    error_log: Option<String>,
    #[arg(short = 'c')]
    conf: Option<PathBuf>,
    #[arg(short = 'g')]
    global: Option<String>,
}

/// Entry point for the binary; returns the process exit code.
pub fn main() -> i32 {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args
        .get(1)
        .is_some_and(|a| a == crate::control::supervisor::SERVE_FLAG)
    {
        return serve_supervised(&args);
    }
    let flags = match Flags::try_parse() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{NAME}: {}", usage_error(&e));
            return 1;
        }
    };
    match run(flags) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{NAME}: [emerg] {e:#}");
            1
        }
    }
}

/// nginx's wording for bad flags.
fn usage_error(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    match e.kind() {
        ErrorKind::InvalidValue | ErrorKind::MissingRequiredArgument => {
            let flag = arg
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_end_matches('<');
            let what = match flag {
                "-c" | "-e" => "file name",
                "-p" => "directory name",
                _ => "parameter",
            };
            format!("option \"{flag}\" requires {what}")
        }
        // nginx names the offending letter of a flag, or the whole word if it is not a flag.
        _ => {
            let shown = match arg.strip_prefix('-') {
                Some(rest) if !rest.starts_with('-') => {
                    rest.chars().next().map(String::from).unwrap_or_default()
                }
                _ => arg.clone(),
            };
            format!("invalid option: \"{shown}\"")
        }
    }
}

/// Options that decide which files are read, shared by `-t` and serving.
#[derive(Clone, Debug)]
pub struct Paths {
    pub prefix: PathBuf,
    /// `-e`: replaces the default error log (an `error_log` in the main context still wins).
    pub error_log: Option<String>,
    pub conf_file: PathBuf,
    pub conf_prefix: PathBuf,
}

fn paths(flags: &Flags) -> anyhow::Result<Paths> {
    let cwd = std::env::current_dir().context("getcwd() failed")?;
    let prefix = match &flags.prefix {
        Some(p) if p.is_absolute() => p.clone(),
        Some(p) => cwd.join(p),
        None => PathBuf::from(DEFAULT_PREFIX),
    };
    let conf_file = match &flags.conf {
        Some(c) if c.is_absolute() => c.clone(),
        Some(c) if flags.prefix.is_some() => prefix.join(c),
        Some(c) => cwd.join(c),
        None => prefix.join("conf/nginx.conf"),
    };
    let conf_file = normalize(&conf_file);
    let conf_prefix = conf_file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| prefix.clone());
    Ok(Paths {
        error_log: flags.error_log.clone(),
        prefix,
        conf_file,
        conf_prefix,
    })
}

/// Removes `.` components (nginx prints the path as given, but never `./x`).
fn normalize(p: &Path) -> PathBuf {
    p.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

fn run(flags: Flags) -> anyhow::Result<i32> {
    if flags.help || flags.help2 {
        print_help();
        return Ok(0);
    }
    if flags.version || flags.configure {
        eprintln!("{NAME} version: {NAME}/{VERSION}");
        if flags.configure {
            eprintln!("built with Rust (rustls for TLS, PCRE2 for regexes)");
            let without: Vec<String> = WITHOUT.iter().map(|m| format!("--without-{m}")).collect();
            eprintln!(
                "configure arguments: --prefix={DEFAULT_PREFIX} {}",
                without.join(" ")
            );
        }
        return Ok(0);
    }
    let paths = paths(&flags)?;
    if let Some(sig) = &flags.signal {
        if !matches!(sig.as_str(), "stop" | "quit" | "reopen" | "reload") {
            eprintln!("{NAME}: invalid option: \"-s {sig}\"");
            return Ok(1);
        }
        return send_signal(&paths, &flags, sig);
    }
    let test = flags.test || flags.dump;
    // `-t` alone needs no text after the check; `-T` prints it and serving hands it on.
    let keep_sources = !flags.test || flags.dump;
    let loaded = load_with(&paths, flags.global.as_deref(), is_root(), keep_sources);
    let quiet = flags.quiet;
    match loaded {
        Ok(l) => {
            if !quiet {
                print_warnings(&l.warnings, &l.parsed);
            }
            if test {
                if !quiet {
                    eprintln!(
                        "{NAME}: the configuration file {} syntax is ok",
                        paths.conf_file.display()
                    );
                    eprintln!(
                        "{NAME}: configuration file {} test is successful",
                        paths.conf_file.display()
                    );
                }
                if flags.dump {
                    dump(&l.parsed.files)?;
                }
                return Ok(0);
            }
            serve(l, &paths, &flags)
        }
        Err(f) => {
            if !quiet {
                print_warnings(&f.warnings, &f.parsed);
            }
            if f.syntax_ok && !quiet {
                eprintln!(
                    "{NAME}: the configuration file {} syntax is ok",
                    paths.conf_file.display()
                );
            }
            print_error(&f.error, &f.parsed);
            if test {
                eprintln!(
                    "{NAME}: configuration file {} test failed",
                    paths.conf_file.display()
                );
            }
            Ok(1)
        }
    }
}

/// A configuration that compiled.
pub struct Loaded {
    pub plan: Plan,
    pub warnings: Vec<ConfError>,
    pub parsed: Parsed,
}

/// A configuration that did not.
pub struct Failed {
    pub error: ConfError,
    pub warnings: Vec<ConfError>,
    pub parsed: Parsed,
    /// nginx prints `syntax is ok` before some errors (`no "events" section`).
    pub syntax_ok: bool,
}

/// Reads, parses and compiles the configuration with the system resolver. This is what serving
/// and reload call; `-t` prints its result.
pub fn load(paths: &Paths, global: Option<&str>) -> Result<Loaded, Box<Failed>> {
    load_as(paths, global, is_root())
}

/// [`load`] as if the master process were (`superuser`) or were not root: the serving process of
/// the supervisor compiles the supervisor's bytes with the supervisor's view.
pub fn load_as(
    paths: &Paths,
    global: Option<&str>,
    superuser: bool,
) -> Result<Loaded, Box<Failed>> {
    load_with(paths, global, superuser, true)
}

/// [`load_as`]; without `keep_sources` the files are read as they are tokenized and their text is
/// not kept (what `-t` needs: a caret line reads its file again).
fn load_with(
    paths: &Paths,
    global: Option<&str>,
    superuser: bool,
    keep_sources: bool,
) -> Result<Loaded, Box<Failed>> {
    let lopts = LoadOptions {
        conf_prefix: paths.conf_prefix.clone(),
    };
    let mut opts = CompileOptions {
        prefix: paths.prefix.clone(),
        conf_prefix: paths.conf_prefix.clone(),
        default_listen_port: if superuser { 80 } else { 8000 },
        superuser,
        resolver: Arc::new(SystemResolver),
        ..Default::default()
    };
    if let Some(g) = global {
        let gp = parser::parse_param(g, &lopts);
        if let Some(e) = gp.error {
            // A `-g` error says `in command line`: no file to point at.
            return Err(Box::new(Failed {
                error: e,
                warnings: Vec::new(),
                parsed: Parsed::default(),
                syntax_ok: false,
            }));
        }
        opts.global = gp.directives;
    }
    // Compiled as read: the file is never held as a whole tree next to its Plan. `parsed` keeps
    // the files (for `-T` and caret lines).
    // Certificates are loaded as nginx loads them while reading the configuration: a bad one fails
    // `-t`, start and reload alike (`cannot load certificate "..."`).
    let (result, warnings, parsed) =
        plan::compile_file(&paths.conf_file, &lopts, &opts, keep_sources);
    let compiled = match result {
        Ok(plan) => match crate::runtime::tls::TlsSet::load(&plan) {
            Ok(_) => (Ok(plan), warnings),
            Err(e) => (Err(e), warnings),
        },
        Err(e) => (Err(e), warnings),
    };
    match compiled {
        (Ok(mut plan), warnings) => Ok(Loaded {
            plan: {
                apply_error_log_flag(&mut plan, paths);
                plan
            },
            warnings,
            parsed,
        }),
        (Err(error), warnings) => {
            let syntax_ok = plan::is_after_syntax(&error);
            Err(Box::new(Failed {
                error,
                warnings,
                parsed,
                syntax_ok,
            }))
        }
    }
}

/// `-e FILE|stderr` replaces the built-in default error log, as nginx's `-e` does.
fn apply_error_log_flag(plan: &mut Plan, paths: &Paths) {
    let Some(e) = &paths.error_log else { return };
    if plan.main.error_logs.iter().any(|l| l.span.is_some()) {
        return;
    }
    let path = match e.as_str() {
        "stderr" => None,
        p if Path::new(p).is_absolute() => Some(PathBuf::from(p)),
        p => Some(paths.prefix.join(p)),
    };
    plan.main.error_logs = vec![crate::plan::ErrorLog {
        path,
        level: crate::conf::Level::Error,
        span: None,
    }];
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The system resolver (getaddrinfo through std).
pub struct SystemResolver;

impl plan::Resolve for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> Result<Vec<std::net::SocketAddr>, String> {
        use std::net::ToSocketAddrs;
        let mut v: Vec<_> = (host, port)
            .to_socket_addrs()
            .map_err(|e| e.to_string())?
            .collect();
        v.dedup();
        Ok(v)
    }

    fn user_exists(&self, name: &str) -> Option<bool> {
        let c = std::ffi::CString::new(name).ok()?;
        // SAFETY: `c` is a valid NUL-terminated string; the returned pointer is only tested for
        // NULL, never dereferenced.
        Some(!unsafe { libc::getpwnam(c.as_ptr()) }.is_null())
    }

    fn group_exists(&self, name: &str) -> Option<bool> {
        let c = std::ffi::CString::new(name).ok()?;
        // SAFETY: as above, with getgrnam.
        Some(!unsafe { libc::getgrnam(c.as_ptr()) }.is_null())
    }
}

fn print_warnings(ws: &[ConfError], parsed: &Parsed) {
    for w in ws {
        eprintln!("{NAME}: {w}");
        let _ = parsed;
    }
}

/// The nginx line, then the source line with a caret, then hints.
fn print_error(e: &ConfError, parsed: &Parsed) {
    eprintln!("{NAME}: {e}");
    if let Some(span) = e.span() {
        if let Some(line) = source_line(&parsed.files, &span.file, span.line) {
            let num = span.line.to_string();
            let pad = " ".repeat(num.len());
            let col = (span.col as usize).saturating_sub(1);
            let prefix: String = line
                .chars()
                .take(col)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            eprintln!("{pad} |");
            eprintln!("{num} | {line}");
            eprintln!("{pad} | {prefix}^");
        }
    }
    for h in &e.hints {
        eprintln!("{NAME}: {h}");
    }
}

fn source_line(files: &[SourceFile], file: &str, line: u32) -> Option<String> {
    let f = files.iter().find(|f| &*f.path == file)?;
    let bytes = f.bytes().ok()?;
    let text = String::from_utf8_lossy(&bytes);
    text.lines()
        .nth(line.checked_sub(1)? as usize)
        .map(|l| l.trim_end().to_string())
}

/// `-T`: every file read, as nginx prints it.
fn dump(files: &[SourceFile]) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for f in files {
        writeln!(out, "# configuration file {}:", f.path)?;
        out.write_all(&f.bytes()?)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

fn print_help() {
    eprint!(
        "{NAME} version: {NAME}/{VERSION}
Usage: {NAME} [-?hvVtTq] [-s signal] [-p prefix]
             [-e filename] [-c filename] [-g directives]

Options:
  -?,-h         : this help
  -v            : show version and exit
  -V            : show version and configure options then exit
  -t            : test configuration and exit
  -T            : test configuration, dump it and exit
  -q            : suppress non-error messages during configuration testing
  -s signal     : send signal to a master process: stop, quit, reopen, reload
  -p prefix     : set prefix path (default: {DEFAULT_PREFIX})
  -e filename   : set error log file (default: logs/error.log)
  -c filename   : set configuration file (default: conf/nginx.conf)
  -g directives : set global directives out of configuration file

"
    );
}

/// `-s`: reads the pid file named by the configuration and signals it (process control's job).
fn send_signal(paths: &Paths, flags: &Flags, sig: &str) -> anyhow::Result<i32> {
    let pid = match load(paths, flags.global.as_deref()) {
        Ok(l) => l.plan.main.pid,
        Err(f) => {
            print_error(&f.error, &f.parsed);
            return Ok(1);
        }
    };
    let Some(signal) = crate::control::Signal::parse(sig) else {
        eprintln!("{NAME}: invalid option: \"-s {sig}\"");
        return Ok(1);
    };
    match crate::control::send_signal(&pid, signal) {
        Ok(_) => Ok(0),
        Err(e) => {
            eprintln!("{NAME}: {e}");
            Ok(1)
        }
    }
}

/// Serve in the foreground: pid file, SIGHUP reload, SIGUSR1 reopen, SIGQUIT graceful and
/// SIGTERM/SIGINT fast stop (`control::daemon`). Started as root, nginx-rs splits into the
/// privileged supervisor and the serving process running as `user` (`control::supervisor`).
fn serve(loaded: Loaded, paths: &Paths, flags: &Flags) -> anyhow::Result<i32> {
    // Reload (SIGHUP) reads the files again with the same prefix and `-g` directives.
    let (paths, global) = (paths.clone(), flags.global.clone());
    if is_root() {
        use crate::control::supervisor::{self, Checked};
        let checked = |l: Loaded| Checked {
            files: source_files(&l.parsed.files),
            plan: l.plan,
        };
        let first = checked(loaded);
        let child_args = std::env::args_os().skip(1).collect();
        return Ok(supervisor::run(
            first,
            move || {
                load(&paths, global.as_deref())
                    .map(checked)
                    .map_err(|f| f.error)
            },
            child_args,
        ));
    }
    Ok(crate::control::daemon::run(loaded.plan, move || {
        load(&paths, global.as_deref())
            .map(|l| l.plan)
            .map_err(|f| f.error)
    }))
}

fn source_files(files: &[SourceFile]) -> Vec<(PathBuf, Vec<u8>)> {
    files
        .iter()
        .map(|f| {
            let bytes = f.bytes().map(|b| b.into_owned()).unwrap_or_default();
            (PathBuf::from(&*f.path), bytes)
        })
        .collect()
}

/// The serving process under the supervisor: `nginx-rs --supervised FD USER UID GID -- ARGS`.
/// Drops privileges first, then takes the first bundle and serves it.
fn serve_supervised(args: &[std::ffi::OsString]) -> i32 {
    use crate::control::{daemon, link, privs};
    use std::os::fd::FromRawFd;
    let text = |i: usize| args.get(i).and_then(|a| a.to_str());
    let num = |i: usize| text(i).and_then(|t| t.parse::<u32>().ok());
    let (Some(fd), Some(user), Some(uid), Some(gid), Some("--")) =
        (num(2), text(3), num(4), num(5), text(6))
    else {
        eprintln!(
            "{NAME}: [emerg] invalid option: \"{}\"",
            crate::control::supervisor::SERVE_FLAG
        );
        return 1;
    };
    let creds = privs::Creds {
        user: user.to_string(),
        uid,
        gid,
    };
    if let Err(e) = privs::drop_to(&creds) {
        eprintln!("{NAME}: [emerg] {e}");
        return 1;
    }
    // If the supervisor dies without a word, stop too (set after the drop: it resets it). And
    // be `nginx-rs` in ps/top rather than `exe` (we were started through /proc/self/exe).
    // SAFETY: prctl with integer arguments / a NUL-terminated name has no other preconditions.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
        libc::prctl(libc::PR_SET_NAME, c"nginx-rs".as_ptr());
    }
    // The descriptor was handed to us by the supervisor (its end of our socketpair); fstat
    // checks it is a socket before we take ownership.
    let fd = fd as i32;
    // SAFETY: fstat writes into a zeroed struct it fully owns.
    let is_socket = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(fd, &mut st) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFSOCK
    };
    if fd < 3 || !is_socket {
        eprintln!("{NAME}: [emerg] no supervisor socket on descriptor {fd}");
        return 1;
    }
    // SAFETY: fd is an open socket (checked above) that nothing else in this process owns.
    let stream = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
    // SAFETY: FD_CLOEXEC on our own descriptor: nothing we exec later inherits it.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    let first = match link::recv(&stream) {
        Ok(b) => b,
        Err(e) => {
            eprintln!(
                "{NAME}: [emerg] recvmsg() from the supervisor failed {}",
                crate::control::errno_text(&e)
            );
            return 1;
        }
    };
    let mut argv = vec![args[0].clone()];
    argv.extend(args[7..].iter().cloned());
    let flags = match Flags::try_parse_from(argv) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{NAME}: {}", usage_error(&e));
            return 1;
        }
    };
    let paths = match paths(&flags) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{NAME}: [emerg] {e:#}");
            return 1;
        }
    };
    let global = flags.global.clone();
    let files = daemon::file_map(&first);
    let plan = match crate::conf::include::with_files(files, || {
        load_as(&paths, global.as_deref(), true)
    }) {
        Ok(l) => l.plan,
        Err(f) => {
            print_error(&f.error, &f.parsed);
            return 1;
        }
    };
    let link = match link::Link::spawn_reader(stream) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{NAME}: [emerg] {e}");
            return 1;
        }
    };
    daemon::run_supervised(
        plan,
        move || {
            load_as(&paths, global.as_deref(), true)
                .map(|l| l.plan)
                .map_err(|f| f.error)
        },
        first,
        link,
    )
}
