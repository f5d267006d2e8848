//! The binary's command line, driven as a user would: nginx's flags, exit codes, and nginx's exact
//! output, plus nginx-rs's caret and `did you mean` lines. Where nginx is installed, the first error
//! line is compared with what `nginx -t` prints for the same file.

mod support;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

const NGINX: &str = "/usr/sbin/nginx";

fn nginx_rs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nginx-rs"))
        .args(args)
        .output()
        .expect("nginx-rs runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    fs::write(&p, text).expect("write");
    p.display().to_string()
}

const BAD: &str = "events {}\nhttp {\n    server {\n        listen 8080;\n        location / {\n            proxy_pas http://127.0.0.1:1;\n        }\n    }\n}\n";

#[test]
fn test_failure_prints_nginx_line_caret_hint_and_exits_1() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = write(tmp.path(), "bad.conf", BAD);
    let out = nginx_rs(&["-t", "-c", &conf]);
    assert_eq!(out.status.code(), Some(1));
    let expected = format!(
        "nginx-rs: [emerg] unknown directive \"proxy_pas\" in {conf}:6\n  |\n6 |             proxy_pas http://127.0.0.1:1;\n  |             ^\nnginx-rs: did you mean \"proxy_pass\"?\nnginx-rs: configuration file {conf} test failed\n"
    );
    assert_eq!(stderr(&out), expected);
}

#[test]
fn first_error_line_matches_real_nginx() {
    if !Path::new(NGINX).exists() {
        eprintln!("skipped: {NGINX} is not installed");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let cases = [
        BAD,
        "events {}\nhttp {\n    upstream u {\n        server 127.0.0.1:1 weight=0;\n    }\n}\n",
        "events {}\nhttp {\n    server {\n        listen 70000;\n    }\n}\n",
        "events {}\nhttp {\n    server {\n        location / {\n            return 200 $nope;\n        }\n    }\n}\n",
        "worker_processes 1;\n",
    ];
    for (i, text) in cases.iter().enumerate() {
        let conf = write(tmp.path(), &format!("c{i}.conf"), text);
        let ours = stderr(&nginx_rs(&["-t", "-c", &conf]));
        let theirs = support::nginx::nginx_t(Path::new(&conf), tmp.path());
        let theirs = stderr(&theirs);
        let pick = |s: &str| -> String {
            let l = s
                .lines()
                .find(|l| l.contains("[emerg]"))
                .unwrap_or("")
                .to_string();
            let msg = l.split_once("[emerg] ").map(|(_, m)| m).unwrap_or("");
            // Timestamped lines carry "PID#TID: " before the message.
            match msg.split_once(": ") {
                Some((pid, m)) if pid.bytes().all(|b| b.is_ascii_digit() || b == b'#') => {
                    m.to_string()
                }
                _ => msg.to_string(),
            }
        };
        assert_eq!(
            pick(&ours),
            pick(&theirs),
            "case {i}: ours {ours:?}, nginx {theirs:?}"
        );
        assert!(
            theirs.contains("test failed")
                && ours.ends_with(&format!(
                    "nginx-rs: configuration file {conf} test failed\n"
                ))
        );
    }
}

#[test]
fn quiet_success_prints_nothing_and_quiet_failure_keeps_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ok = write(
        tmp.path(),
        "ok.conf",
        "server {\n    listen 127.0.0.1:8080;\n}\n",
    );
    let out = nginx_rs(&["-t", "-q", "-c", &ok]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stderr(&out), "");
    let bad = write(tmp.path(), "bad.conf", BAD);
    let out = nginx_rs(&["-tq", "-c", &bad]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("nginx-rs: [emerg] unknown directive \"proxy_pas\""));
}

#[test]
fn dump_prints_every_file_read() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let inc = write(
        tmp.path(),
        "inc.conf",
        "server {\n    listen 127.0.0.1:8081;\n}\n",
    );
    let main = write(
        tmp.path(),
        "nginx.conf",
        "events {}\nhttp {\n    include inc.conf;\n}\n",
    );
    let out = nginx_rs(&["-T", "-c", &main]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let main_text = fs::read_to_string(&main).expect("read");
    let inc_text = fs::read_to_string(&inc).expect("read");
    let inc_name = tmp.path().join("inc.conf").display().to_string();
    assert_eq!(
        stdout,
        format!("# configuration file {main}:\n{main_text}\n# configuration file {inc_name}:\n{inc_text}\n")
    );
    assert!(stderr(&out).ends_with("test is successful\n"));
}

#[test]
fn global_directives_errors_say_in_command_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = write(tmp.path(), "nginx.conf", "events {}\n");
    let out = nginx_rs(&["-t", "-c", &conf, "-g", "daemon maybe;"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with(
        "nginx-rs: [emerg] invalid value \"maybe\" in \"daemon\" directive, it must be \"on\" or \"off\" in command line\n"
    ));
    let out = nginx_rs(&["-t", "-c", &conf, "-g", "daemon off; worker_processes 2;"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = nginx_rs(&["-t", "-c", &conf, "-g", "listen 80;"]);
    assert!(stderr(&out).starts_with(
        "nginx-rs: [emerg] \"listen\" directive is not allowed here in command line\n"
    ));
}

#[test]
fn prefix_makes_relative_conf_paths_prefix_relative() {
    let tmp = tempfile::tempdir().expect("tempdir");
    fs::create_dir_all(tmp.path().join("conf")).expect("mkdir");
    write(&tmp.path().join("conf"), "nginx.conf", "events {}\n");
    let prefix = tmp.path().display().to_string();
    let out = nginx_rs(&["-t", "-p", &prefix]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!(
        "the configuration file {prefix}/conf/nginx.conf syntax is ok"
    )));
}

#[test]
fn version_help_and_bad_flags() {
    let v = nginx_rs(&["-v"]);
    assert_eq!(v.status.code(), Some(0));
    assert_eq!(
        stderr(&v),
        format!("nginx-rs version: nginx-rs/{}\n", env!("CARGO_PKG_VERSION"))
    );
    let big_v = stderr(&nginx_rs(&["-V"]));
    assert!(big_v.contains("configure arguments:") && big_v.contains("--without-http_gzip_module"));
    for flag in ["-h", "-?"] {
        let h = nginx_rs(&[flag]);
        assert_eq!(h.status.code(), Some(0));
        assert!(stderr(&h).contains("-t            : test configuration and exit"));
    }
    assert_eq!(
        stderr(&nginx_rs(&["-x"])),
        "nginx-rs: invalid option: \"x\"\n"
    );
    assert_eq!(
        stderr(&nginx_rs(&["-c"])),
        "nginx-rs: option \"-c\" requires file name\n"
    );
    let s = nginx_rs(&["-s", "restart"]);
    assert_eq!(s.status.code(), Some(1));
    assert_eq!(stderr(&s), "nginx-rs: invalid option: \"-s restart\"\n");
}

#[test]
fn missing_file_is_nginx_open_error() {
    let out = nginx_rs(&["-t", "-c", "/nonexistent/nginx-rs.conf"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "nginx-rs: [emerg] open() \"/nonexistent/nginx-rs.conf\" failed (2: No such file or directory)\nnginx-rs: configuration file /nonexistent/nginx-rs.conf test failed\n"
    );
}

/// nginx only warns when an upstream names two balancing methods; the configuration still passes.
#[test]
fn redefined_balancing_method_is_a_warning() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = write(
        tmp.path(),
        "lb.conf",
        "upstream u { server 127.0.0.1:1; least_conn; ip_hash; }\n\
         server { listen 8080; location / { proxy_pass http://u; } }\n",
    );
    let out = nginx_rs(&["-t", "-c", &conf]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "nginx-rs: [warn] load balancing method redefined in {conf}:1\n"
        )),
        "{err}"
    );
    assert!(err.ends_with(&format!(
        "nginx-rs: configuration file {conf} test is successful\n"
    )));
}
