//! Issue 6 differential: one config with several `server_name` forms and locations of every kind,
//! each answering `return` with the variables it saw (plus `map`, `allow`/`deny`, redirects,
//! `error_page`, `rewrite` chains and a rewrite loop). Real nginx and nginx-rs get the same config
//! and the same requests; the status, `Location` and body must be the same.
//!
//! Normalisations, only what must differ: each server's own port becomes `PORT`, and the error-page
//! footer `nginx` (nginx with `server_tokens off`) vs `nginx-rs`.

mod support;

use support::client::{exchange, RawResponse};
use support::nginx::{skip_unless, start, Flavor, Options, Server};

/// The http-level config; `PORT` is the listen port.
const CONFIG: &str = r#"
    server_tokens off;
    map $uri $section {
        default                    none;
        /                          root;
        ~^/api/(?<ver>v[0-9]+)/    api-$ver;
        ~*^/m/IMG/(.+)$            img-$1;
    }
    map $http_host $hostkind {
        hostnames;
        default          other;
        example.com      apex;
        *.example.com    sub;
        www.example.*    www-any;
    }
    map $arg_k $kval {
        default  dflt;
        a        alpha;
        B        beta-$uri;
        ~^n(\d+)$ num-$1;
    }

    server {
        listen 127.0.0.1:PORT default_server;
        server_name _;
        location / { return 200 "default host=$host uri=$uri sn=$server_name\n"; }
        location /r { return 301 /moved$is_args$args; }
    }

    server {
        listen 127.0.0.1:PORT;
        server_name example.com www.example.com;

        location = / { return 200 "exact-root\n"; }
        location / { return 200 "prefix-root uri=$uri section=$section\n"; }
        location /docs/ {
            return 200 "docs uri=$uri\n";
            location /docs/api/ { return 200 "docs-api uri=$uri\n"; }
            location ~ \.pdf$ { return 200 "docs-pdf uri=$uri\n"; }
        }
        location ^~ /static/ { return 200 "static uri=$uri\n"; }
        location ~ \.(gif|jpg)$ { return 200 "image ext=$1 uri=$uri\n"; }
        location ~* ^/CaSe/(?<rest>.*)$ { return 200 "caseless rest=$rest\n"; }
        location ~ ^/user/(\d+)/(\w+)$ { return 200 "user id=$1 action=$2\n"; }
        location /api/ { return 200 "api section=$section ver=$ver\n"; }
        location /m/ { return 200 "map k=$kval host=$hostkind section=$section\n"; }
        location /vars {
            return 200 "ru=$request_uri uri=$uri args=$args isargs=$is_args a=$arg_a method=$request_method host=$host sn=$server_name\n";
        }
        location /r301 { return 301 /target; }
        location /r302abs { return 302 http://other.test/x; }
        location /rurl { return http://secure.test$uri; }
        location /r307 { return 307 /t?$args; }
        location /gone { return 410; }
        location /r204 { return 204; }
        location /close { error_page 444 /errpage; return 444; }
        location /r200empty { return 200; }
        location /rvar { return 200 $request_method-$uri; }
        location /custom404 { return 404 "custom not found\n"; }
        location /e404 { error_page 404 /errpage; return 404; }
        location /e404eq { error_page 404 =200 /errpage?from=eq; return 404; }
        location /e404named { error_page 404 @fallback; return 404; }
        location /e403url { error_page 403 http://errors.test/forbidden; deny all; }
        location /e500 { error_page 500 502 = /errpage; return 500; }
        location /e301 { error_page 404 =301 http://errors.test/moved; return 404; }
        location /echain { error_page 404 /nothing/x; return 404; }
        location /nothing { error_page 404 /errpage; }
        location /errpage { return 200 "errpage uri=$uri args=$args method=$request_method\n"; }
        location @fallback { return 200 "named fallback uri=$uri\n"; }
        location /int { internal; return 200 "internal uri=$uri\n"; }
        location /toint { error_page 404 /int/page; return 404; }
        location /deny { deny all; return 200 "never\n"; }
        location /allow { allow 127.0.0.1; deny all; return 200 "allowed $remote_addr\n"; }
        location /allow2 { deny 127.0.0.0/8; allow all; return 200 "allowed2\n"; }
        location /absoff { absolute_redirect off; return 301 /rel; }
        location /portoff { port_in_redirect off; return 301 /noport; }
        location /snin { server_name_in_redirect on; return 301 /sn; }
    }

    server {
        listen 127.0.0.1:PORT;
        server_name *.example.org;
        location / { return 200 "wild-lead host=$host\n"; }
    }

    server {
        listen 127.0.0.1:PORT;
        server_name www.example.*;
        location / { return 200 "wild-trail host=$host\n"; }
    }

    server {
        listen 127.0.0.1:PORT;
        server_name ~^(?<sub>[a-z]+)\.regex\.test$;
        location / { return 200 "regex-host sub=$sub uri=$uri\n"; }
    }

    server {
        listen 127.0.0.1:PORT;
        server_name rw.test;
        rewrite ^/old/(.*)$ /new/$1 last;
        if ($arg_srv = stop) { return 403 "server-if stop\n"; }

        location /new/ { return 200 "new uri=$uri args=$args\n"; }
        location /chain/ {
            rewrite ^/chain/(.*)$ /step/$1;
            rewrite ^/step/(.*)$ /done/$1 last;
            return 200 "chain not reached\n";
        }
        location /done/ { return 200 "done uri=$uri args=$args\n"; }
        location /loop { rewrite ^ /loop last; }
        location /pingpong { rewrite ^ /pongping; }
        location /pongping { rewrite ^ /pingpong; }
        location /brk {
            rewrite ^/brk/(.*)$ /new/$1 break;
            return 200 "after break\n";
        }
        location /setbrk {
            set $a "x";
            break;
            return 200 "never\n";
        }
        location /args { rewrite ^ /new/x?a=1; }
        location ~ ^/cap/(\w+)/(\d+)$ { rewrite ^/cap/(.*)$ /new/$1-x last; }
        location ~ ^/cap2/(\w+)/(\d+)$ { rewrite ^ /new/[$2-$1] last; }
        location /noargs { rewrite ^ /new/y? last; }
        location /esc/ { rewrite ^/esc/(.*)$ /new/$1 redirect; }
        location /escq/ { rewrite ^/escq/(.*)$ /new/$1?a=$1 redirect; }
        location /redir { rewrite ^/redir/(.*)$ /new/$1 redirect; }
        location /perm { rewrite ^/perm/(.*)$ http://elsewhere.test/$1 permanent; }
        location /ifs {
            set $v "none";
            if ($arg_x = 1) { set $v "one"; }
            if ($arg_x ~ ^(\d)(\d)$) { set $v "two-$2$1"; }
            if ($http_x_test ~* ^yes) { set $v "${v}-hdr"; }
            if (!-e /nonexistent/file) { set $e "noexist"; }
            if (-d /) { set $d "root-is-dir"; }
            if ($arg_ret) { return 200 "early ret=$arg_ret\n"; }
            if ($arg_x != 5) { set $ne "not5"; }
            return 200 "ifs v=$v e=$e d=$d ne=$ne\n";
        }
    }
"#;

/// (Host header or None, request target, extra header lines).
fn requests() -> Vec<(Option<&'static str>, &'static str, &'static str)> {
    let e = Some("example.com");
    let rw = Some("rw.test");
    vec![
        // Server selection.
        (e, "/", ""),
        (Some("EXAMPLE.com"), "/x", ""),
        (Some("example.com."), "/x", ""),
        (Some("example.com:8080"), "/vars", ""),
        (Some("www.example.com"), "/", ""),
        (Some("a.b.example.org"), "/p", ""),
        (Some("example.org"), "/p", ""),
        (Some("www.example.net"), "/p", ""),
        (Some("foo.regex.test"), "/q", ""),
        (Some("Foo.Regex.Test"), "/q", ""),
        (Some("unknown.test"), "/u", ""),
        (None, "/nohost", ""),
        (None, "/r?a=1", ""),
        // Absolute-form targets: the host comes from the request line (also for `Location`).
        (None, "http://example.com/r301", ""),
        (None, "http://Example.COM/vars?a=2", ""),
        // Locations.
        (e, "/index.html", ""),
        (e, "/docs/", ""),
        (e, "/docs/guide", ""),
        (e, "/docs/api/", ""),
        (e, "/docs/api/x.pdf", ""),
        (e, "/docs/file.pdf", ""),
        (e, "/Docs/", ""),
        (e, "/static/a.gif", ""),
        (e, "/img/a.gif", ""),
        (e, "/img/a.JPG", ""),
        (e, "/CASE/Foo", ""),
        (e, "/case/bar/baz", ""),
        (e, "/user/42/edit", ""),
        (e, "/user/42/edit/more", ""),
        // Dot-segments and encodings.
        (e, "/docs/../static/x", ""),
        (e, "/a/./b/../docs/", ""),
        (e, "/docs/%61pi/", ""),
        (e, "/user/%34%32/view", ""),
        (e, "//docs//api//", ""),
        (e, "/vars?a=1&b=%20x", ""),
        (e, "/vars/%7Ename?A=up", ""),
        // Maps.
        (e, "/api/v2/items", ""),
        (e, "/api/x", ""),
        (e, "/m/?k=a", ""),
        (e, "/m/?k=b", ""),
        (e, "/m/IMG/pic.png?k=n42", ""),
        (e, "/m/?k=zzz", ""),
        (Some("www.example.com"), "/m/", ""),
        (Some("deep.sub.example.com"), "/m/", ""),
        // Redirects and returns.
        (e, "/r301", ""),
        (e, "/r302abs", ""),
        (e, "/rurl/p", ""),
        (e, "/r307?q=1", ""),
        (e, "/gone", ""),
        (e, "/r204", ""),
        (e, "/close", ""),
        (e, "/r200empty", ""),
        (e, "HEAD /rvar/x", ""),
        (e, "HEAD /gone", ""),
        (e, "POST /rvar/p", ""),
        (e, "HEAD /e404", ""),
        (e, "/custom404", ""),
        (e, "/absoff", ""),
        (e, "/portoff", ""),
        (Some("www.example.com"), "/snin", ""),
        (e, "/docs", ""),
        // error_page.
        (e, "/e404", ""),
        (e, "/e404eq", ""),
        (e, "/e404named", ""),
        (e, "/e403url", ""),
        (e, "/e500", ""),
        (e, "/e301", ""),
        (e, "/int", ""),
        (e, "/toint", ""),
        // The loop guard: an error page whose own request fails gets no second error_page.
        (e, "/echain", ""),
        (e, "/nothing/y", ""),
        // Access.
        (e, "/deny", ""),
        (e, "/allow", ""),
        (e, "/allow2", ""),
        // Rewrite.
        (rw, "/old/thing?z=1", ""),
        (rw, "/new/direct", ""),
        (rw, "/x?srv=stop", ""),
        (rw, "/chain/abc", ""),
        (rw, "/loop", ""),
        (rw, "/pingpong", ""),
        (rw, "/brk/q", ""),
        (rw, "/setbrk", ""),
        (rw, "/args?b=2", ""),
        (rw, "/cap/abc/12", ""),
        (rw, "/cap2/abc/12", ""),
        (rw, "/noargs?b=2", ""),
        (rw, "/redir/p?b=2", ""),
        (rw, "/perm/p", ""),
        (rw, "/esc/a%20b?c=d", ""),
        (rw, "/esc/a+b%3F;c", ""),
        (rw, "/esc/plain;x", ""),
        (rw, "/esc/a%3Fb%23c%25d%26e", ""),
        (rw, "/esc/a%C3%A9", ""),
        (rw, "/escq/x%20y%26z%2B", ""),
        (rw, "/ifs", ""),
        (rw, "/ifs?x=1", ""),
        (rw, "/ifs?x=12", ""),
        (rw, "/ifs?x=5", "X-Test: YES please\r\n"),
        (rw, "/ifs?ret=now", ""),
    ]
}

/// `target` may start with a method (`HEAD /x`); GET otherwise.
fn request_bytes(host: Option<&str>, target: &str, extra: &str) -> Vec<u8> {
    let (method, target) = target.split_once(' ').unwrap_or(("GET", target));
    match host {
        Some(h) => {
            format!("{method} {target} HTTP/1.1\r\nHost: {h}\r\n{extra}Connection: close\r\n\r\n")
        }
        None => format!("{method} {target} HTTP/1.0\r\n{extra}\r\n"),
    }
    .into_bytes()
}

/// Status, Location and body, with the server's own port and footer made neutral.
fn comparable(r: &RawResponse, port: u16) -> (u16, Option<String>, String) {
    let norm = |s: &str| {
        s.replace(&port.to_string(), "PORT")
            .replace("<center>nginx-rs</center>", "<center>nginx</center>")
    };
    (r.status, r.header("Location").map(norm), norm(&r.text()))
}

fn run_all(s: &Server) -> Vec<Option<(u16, Option<String>, String)>> {
    requests()
        .iter()
        .map(|(h, t, x)| {
            exchange(s.addr(), &request_bytes(*h, t, x))
                .response
                .map(|r| comparable(&r, s.port()))
        })
        .collect()
}

fn start_flavor(flavor: Flavor) -> Option<Server> {
    skip_unless(
        start(flavor, Options::default(), &|port| {
            CONFIG.replace("PORT", &port.to_string())
        }),
        flavor,
    )
}

#[test]
fn routing_and_edge_directives_match_nginx() {
    assert!(requests().len() >= 60);
    let Some(ours) = start_flavor(Flavor::NginxRs) else {
        return;
    };
    let Some(nginx) = start_flavor(Flavor::Nginx) else {
        return;
    };
    let theirs = run_all(&nginx);
    let mine = run_all(&ours);
    let mut diffs = Vec::new();
    for (i, (h, t, _)) in requests().iter().enumerate() {
        if theirs[i] != mine[i] {
            diffs.push(format!(
                "{h:?} {t}\n  nginx:    {:?}\n  nginx-rs: {:?}",
                theirs[i], mine[i]
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} of {} differ:\n{}\nnginx-rs stderr:\n{}",
        diffs.len(),
        requests().len(),
        diffs.join("\n"),
        ours.stderr()
    );
}

/// The rewrite cycle limit, asserted on nginx-rs alone (runs without nginx installed too).
#[test]
fn rewrite_loop_hits_the_limit_with_500() {
    let Some(ours) = start_flavor(Flavor::NginxRs) else {
        return;
    };
    for target in ["/loop", "/pingpong"] {
        let r = exchange(ours.addr(), &request_bytes(Some("rw.test"), target, ""));
        assert_eq!(r.status(), Some(500), "{target}: {}", r.raw_text());
    }
    // A chain of two rewrites stays within the limit.
    let r = exchange(
        ours.addr(),
        &request_bytes(Some("rw.test"), "/chain/abc", ""),
    );
    assert_eq!(r.status(), Some(200));
    assert_eq!(
        r.response.map(|r| r.text()),
        Some("done uri=/done/abc args=\n".to_string())
    );
}
