//! Server selection and location matching in nginx's order, over real sockets. Each server/location
//! proxies with a header naming itself, so the backend's echo says who was chosen.

mod support;

use std::sync::Arc;

use nginx_rs::plan::*;
use support::*;

fn tagged(up: &Arc<Upstream>, tag: &str, extra: &[(&str, &str)]) -> ProxyConf {
    let mut c = proxy_conf(up, None);
    let mut hs = vec![(http::HeaderName::from_static("x-tag"), tpl(&[tag]))];
    for (k, v) in extra {
        hs.push((
            http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            tpl(&[v]),
        ));
    }
    hs.extend(default_headers());
    c.set_headers = Arc::new(hs);
    c
}

fn tag_of(r: &Resp) -> String {
    let (_, h) = head_of(&r.text());
    h.iter()
        .find(|(k, _)| k == "x-tag")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| format!("<status {}>", r.status))
}

fn header_of(r: &Resp, name: &str) -> String {
    let (_, h) = head_of(&r.text());
    h.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn server_name_precedence() {
    let b = Backend::spawn("b", Behaviour::Echo).await;
    let up = upstream("backend", &[b.addr]);
    let srv = |names: Vec<ServerName>, tag: &str| {
        server(
            names,
            vec![loc(
                prefix("/"),
                Some(tagged(&up, tag, &[("x-cap", "$slot0"), ("x-1", "$1")])),
                vec![],
            )],
        )
    };
    let servers = vec![
        srv(vec![ServerName::Exact("_".into())], "first"),
        srv(vec![ServerName::Exact("www.example.com".into())], "exact"),
        srv(
            vec![ServerName::LeadingWildcard(".example.com".into())],
            "lead-short",
        ),
        srv(
            vec![ServerName::LeadingWildcard(".www.example.com".into())],
            "lead-long",
        ),
        srv(
            vec![ServerName::TrailingWildcard("mail.".into())],
            "trail-short",
        ),
        srv(
            vec![ServerName::TrailingWildcard("mail.example.".into())],
            "trail-long",
        ),
        srv(
            vec![ServerName::Regex(regex(
                r"^(?<sub>[a-z]+)\.regex\.org$",
                false,
                &[(1, 0)],
            ))],
            "regex1",
        ),
        srv(
            vec![ServerName::Regex(regex(r"regex", false, &[]))],
            "regex2",
        ),
        srv(vec![ServerName::Exact("default.test".into())], "default"),
    ];
    let mut pl = plan(servers, 8, vec![up.clone()]);
    pl.http.slots = vec![Arc::from("sub")];
    let p = Proxy::start(pl).await;
    let cases = [
        ("www.example.com", "exact"),
        ("WWW.Example.COM.", "exact"),
        ("a.www.example.com", "lead-long"),
        ("a.b.example.com", "lead-short"),
        ("example.com", "default"),
        ("mail.example.org", "trail-long"),
        ("mail.foo.org", "trail-short"),
        ("mail.example.com.x", "trail-long"),
        ("foo.regex.org", "regex1"),
        ("foo.bar.regex.org", "regex2"),
        ("unknown", "default"),
    ];
    for (host, want) in cases {
        let r = get(p.addr, host, "/").await;
        assert_eq!(tag_of(&r), want, "Host: {host}");
    }
    let r = get(p.addr, "foo.regex.org", "/").await;
    assert_eq!(
        header_of(&r, "x-cap"),
        "foo",
        "named capture from server_name"
    );
    assert_eq!(header_of(&r, "x-1"), "foo", "$1 from server_name");
    // HTTP/1.0 without Host: default server, $host is its name.
    let r = raw(p.addr, b"GET / HTTP/1.0\r\n\r\n")
        .await
        .expect("response");
    assert_eq!(tag_of(&r), "default");
    p.stop().await;
}

#[tokio::test]
async fn location_precedence() {
    let b = Backend::spawn("b", Behaviour::Echo).await;
    let up = upstream("backend", &[b.addr]);
    let t = |tag: &str| Some(tagged(&up, tag, &[("x-1", "$1")]));
    let locations = vec![
        loc(prefix("/"), t("root"), vec![]),
        loc(LocMatch::Exact("/".into()), t("exact-root"), vec![]),
        loc(prefix("/images/"), t("images"), vec![]),
        loc(
            LocMatch::Prefix {
                path: "/static/".into(),
                no_regex: true,
            },
            t("static-noregex"),
            vec![],
        ),
        loc(
            prefix("/app/"),
            t("app"),
            vec![
                loc(prefix("/app/admin/"), t("app-admin"), vec![]),
                loc(
                    LocMatch::Regex(Box::new(regex(r"\.php$", false, &[]))),
                    t("app-php"),
                    vec![],
                ),
            ],
        ),
        loc(
            LocMatch::Regex(Box::new(regex(r"\.(gif|jpg)$", false, &[]))),
            t("regex-img"),
            vec![],
        ),
        loc(
            LocMatch::Regex(Box::new(regex(r"\.JPG$", true, &[]))),
            t("regex-jpg-ci"),
            vec![],
        ),
        loc(
            LocMatch::Regex(Box::new(regex(r"^/app/.*\.txt$", false, &[]))),
            t("regex-txt"),
            vec![],
        ),
    ];
    let s = server(vec![], locations);
    let p = Proxy::start(plan(vec![s], 0, vec![up])).await;
    let cases = [
        ("/", "exact-root"),
        ("/index.html", "root"),
        ("/images/a.png", "images"),
        ("/images/a.gif", "regex-img"),
        ("/x/a.JPG", "regex-jpg-ci"),
        ("/static/a.gif", "static-noregex"),
        ("/app/x", "app"),
        ("/app/admin/x", "app-admin"),
        ("/app/admin/x.php", "app-php"),
        ("/app/x.txt", "regex-txt"),
        ("/app/a.gif", "regex-img"),
        ("/%69mages/a.png", "images"),
        ("/a/../images/b", "images"),
        ("//images///c", "images"),
    ];
    for (path, want) in cases {
        let r = get(p.addr, "h", path).await;
        assert_eq!(tag_of(&r), want, "{path}");
    }
    let r = get(p.addr, "h", "/p/q.jpg").await;
    assert_eq!(header_of(&r, "x-1"), "jpg", "$1 from the location regex");
    p.stop().await;
}
