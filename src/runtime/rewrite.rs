//! nginx's rewrite module at run time: `rewrite`, `set`, `if`, `break` and `return`, executed in
//! order over one list of [`RewriteOp`]s (a server's, or a location's).
//!
//! The caller (`runtime::edge`) runs the server list before location search and the location list
//! after it, and restarts the search when [`Flow::Done`] says the URI changed or on [`Flow::Last`].

use std::sync::Arc;

use super::ctx::RequestCtx;
use super::router::regex_match;
use crate::plan::{Condition, FileTest, LocConf, RewriteFlag, RewriteOp, Segment, Template, Var};

/// How a run of rewrite directives ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    /// Every directive ran, or `break` / `rewrite ... break` stopped them. `uri_changed`: a
    /// `rewrite` without flag changed the URI, so the location search starts again.
    Done { uri_changed: bool },
    /// `rewrite ... last`: stop, search the location again for the new URI.
    Last,
    /// `return CODE [TEXT]` (text rendered).
    Return { code: u16, text: Option<Vec<u8>> },
    /// `rewrite ... redirect|permanent` or to an absolute URL: `Location` as built by nginx.
    Redirect { code: u16, location: String },
}

/// The state one run leaves behind besides its [`Flow`].
#[derive(Default)]
pub struct Effects {
    /// Configuration of the last `if` block that matched and carries its own (e.g. `proxy_pass`).
    pub conf: Option<Arc<LocConf>>,
}

/// Run `ops` on the request.
pub fn run(ctx: &mut RequestCtx, ops: &[RewriteOp], fx: &mut Effects) -> Flow {
    let mut uri_changed = false;
    match exec(ctx, ops, fx, &mut uri_changed) {
        Some(Stop::Break) | None => Flow::Done { uri_changed },
        Some(Stop::Flow(f)) => f,
    }
}

enum Stop {
    /// `break` (the directive, or `rewrite ... break`).
    Break,
    Flow(Flow),
}

fn exec(
    ctx: &mut RequestCtx,
    ops: &[RewriteOp],
    fx: &mut Effects,
    uri_changed: &mut bool,
) -> Option<Stop> {
    for op in ops {
        match op {
            RewriteOp::Break => {
                // nginx's break code clears `uri_changed`: no new location search.
                *uri_changed = false;
                return Some(Stop::Break);
            }
            RewriteOp::Return { code, body, .. } => {
                let text = body.as_ref().map(|t| ctx.render(t));
                return Some(Stop::Flow(Flow::Return { code: *code, text }));
            }
            RewriteOp::Set { slot, value, .. } => {
                let v = String::from_utf8_lossy(&ctx.render(value)).into_owned();
                let i = *slot as usize;
                if ctx.slots.len() <= i {
                    ctx.slots.resize(i + 1, None);
                }
                ctx.slots[i] = Some(v);
                ctx.edge.clear_maps();
            }
            RewriteOp::If {
                cond, ops, conf, ..
            } => {
                if condition(ctx, cond) {
                    if conf.is_some() {
                        fx.conf = conf.clone();
                    }
                    if let Some(stop) = exec(ctx, ops, fx, uri_changed) {
                        return Some(stop);
                    }
                }
            }
            RewriteOp::Rewrite {
                regex,
                replacement,
                flag,
                ..
            } => {
                let Some(caps) = regex_match(regex, &ctx.uri) else {
                    continue;
                };
                ctx.set_captures(Some(caps));
                let redirect = matches!(flag, RewriteFlag::Redirect | RewriteFlag::Permanent);
                let rendered = if redirect && quoted_uri(&ctx.request_uri) {
                    render_escaping_captures(ctx, replacement)
                } else {
                    ctx.render(replacement)
                };
                let mut out = String::from_utf8_lossy(&rendered).into_owned();
                // A trailing `?` means "do not append the original arguments".
                let add_args = !out.ends_with('?');
                if !add_args {
                    out.pop();
                }
                match flag {
                    RewriteFlag::Redirect | RewriteFlag::Permanent => {
                        let code = if *flag == RewriteFlag::Permanent {
                            301
                        } else {
                            302
                        };
                        if add_args && !ctx.args.is_empty() {
                            out.push(if out.contains('?') { '&' } else { '?' });
                            out.push_str(&ctx.args);
                        }
                        return Some(Stop::Flow(Flow::Redirect {
                            code,
                            location: out,
                        }));
                    }
                    RewriteFlag::None | RewriteFlag::Last | RewriteFlag::Break => {
                        set_uri(ctx, out, add_args);
                        ctx.edge.internal = true;
                        match flag {
                            RewriteFlag::Last => return Some(Stop::Flow(Flow::Last)),
                            RewriteFlag::Break => {
                                *uri_changed = false;
                                return Some(Stop::Break);
                            }
                            _ => *uri_changed = true,
                        }
                    }
                }
            }
        }
    }
    None
}

/// nginx's `quoted_uri` / `plus_in_uri`: the request path had a `%` escape or a `+`.
fn quoted_uri(request_uri: &str) -> bool {
    let path = request_uri.split('?').next().unwrap_or("");
    path.bytes().any(|b| b == b'%' || b == b'+')
}

/// Render a redirect's replacement with `$1..$9` escaped again, as nginx does when the request
/// path was quoted (observed on nginx 1.22.1): before the first `?` of the output, controls, space,
/// `#`, `%`, DEL and non-ASCII are escaped (a decoded `?` passes and starts the arguments); after
/// it, also `&`, `+`, `;` and `?`.
fn render_escaping_captures(ctx: &RequestCtx, t: &Template) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out: Vec<u8> = Vec::new();
    for seg in &t.segments {
        match seg {
            Segment::Var(Var::Capture(n)) => {
                let v = ctx.captures.as_ref().and_then(|c| c.get(*n as usize));
                for &b in v.unwrap_or("").as_bytes() {
                    let in_args = out.contains(&b'?');
                    let escape = b <= 0x20
                        || b >= 0x7f
                        || matches!(b, b'#' | b'%')
                        || (in_args && matches!(b, b'&' | b'+' | b';' | b'?'));
                    if escape {
                        out.extend_from_slice(&[
                            b'%',
                            HEX[(b >> 4) as usize],
                            HEX[(b & 15) as usize],
                        ]);
                    } else {
                        out.push(b);
                    }
                }
            }
            other => ctx.render_into(
                &Template {
                    segments: vec![other.clone()],
                },
                &mut out,
            ),
        }
    }
    out
}

/// The new `$uri` and `$args` of an internal rewrite (nginx's `ngx_http_script_regex_end_code`).
fn set_uri(ctx: &mut RequestCtx, out: String, add_args: bool) {
    match out.split_once('?') {
        Some((path, args)) => {
            let mut a = args.to_string();
            if add_args && !ctx.args.is_empty() {
                a.push('&');
                a.push_str(&ctx.args);
            }
            ctx.uri = path.to_string();
            ctx.args = a;
        }
        None => {
            ctx.uri = out;
            if !add_args {
                ctx.args.clear();
            }
        }
    }
    ctx.edge.clear_maps();
}

/// nginx's `if` conditions.
pub fn condition(ctx: &mut RequestCtx, cond: &Condition) -> bool {
    match cond {
        Condition::Var(t) => {
            let v = ctx.render(t);
            !(v.is_empty() || v == b"0")
        }
        Condition::Eq(a, b, negate) => (ctx.render(a) == ctx.render(b)) != *negate,
        Condition::Regex(t, re, negate) => {
            let subject = String::from_utf8_lossy(&ctx.render(t)).into_owned();
            match regex_match(re, &subject) {
                Some(caps) => {
                    if !negate {
                        ctx.set_captures(Some(caps));
                    }
                    !negate
                }
                None => *negate,
            }
        }
        Condition::File(test, t, negate) => {
            let path = String::from_utf8_lossy(&ctx.render(t)).into_owned();
            file_test(*test, &path) != *negate
        }
    }
}

fn file_test(test: FileTest, path: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Ok(md) = std::fs::metadata(path) else {
        return false;
    };
    match test {
        FileTest::File => md.is_file(),
        FileTest::Dir => md.is_dir(),
        FileTest::Exists => true,
        FileTest::Exec => md.permissions().mode() & 0o111 != 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::edge::testing;

    fn run_server(http: &str, uri: &str, args: &str) -> (Flow, String, String) {
        let plan = testing::plan(http);
        let mut c = testing::ctx(&plan, uri, args, Default::default());
        let server = c.server.clone();
        let flow = run(&mut c, &server.rewrites, &mut Effects::default());
        (flow, c.uri, c.args)
    }

    fn server(body: &str) -> String {
        format!("server {{ listen 127.0.0.1:8080; {body} }}")
    }

    #[test]
    fn rewrite_flags_and_arguments() {
        let cfg = server("rewrite ^/a/(.*)$ /b/$1?x=1; rewrite ^/b/(.*)$ /c/$1 last;");
        let (flow, uri, args) = run_server(&cfg, "/a/q", "y=2");
        assert_eq!(flow, Flow::Last);
        assert_eq!((uri.as_str(), args.as_str()), ("/c/q", "x=1&y=2"));

        let (flow, uri, args) = run_server(&server("rewrite ^ /n? ;"), "/p", "y=2");
        assert_eq!(flow, Flow::Done { uri_changed: true });
        assert_eq!((uri.as_str(), args.as_str()), ("/n", ""));

        let (flow, _, _) = run_server(&server("rewrite ^/(.*) /z/$1 redirect;"), "/p", "y=2");
        assert_eq!(
            flow,
            Flow::Redirect {
                code: 302,
                location: "/z/p?y=2".into()
            }
        );
        let (flow, _, _) = run_server(&server("rewrite ^ http://h/x?a=1 permanent;"), "/", "b");
        assert_eq!(
            flow,
            Flow::Redirect {
                code: 301,
                location: "http://h/x?a=1&b".into()
            }
        );
        // `break` (flag or directive) stops and clears the pending location search.
        let (flow, uri, _) = run_server(&server("rewrite ^ /b break; return 403;"), "/a", "");
        assert_eq!(
            (flow, uri.as_str()),
            (Flow::Done { uri_changed: false }, "/b")
        );
        let (flow, _, _) = run_server(&server("rewrite ^ /b; break; return 403;"), "/a", "");
        assert_eq!(flow, Flow::Done { uri_changed: false });
        // No match: nothing changes.
        let (flow, uri, _) = run_server(&server("rewrite ^/nomatch /b last;"), "/a", "");
        assert_eq!(
            (flow, uri.as_str()),
            (Flow::Done { uri_changed: false }, "/a")
        );
    }

    #[test]
    fn if_conditions_set_and_return() {
        let cfg = server(
            r#"set $v none;
               if ($arg_x = 1) { set $v one; }
               if ($arg_x ~* ^(A)(b)$) { set $v "re-$2$1"; }
               if ($arg_x !~ ^\d+$) { set $w notnum; }
               if (-d /) { set $d dir; }
               if (!-f /nonexistent/x) { set $f nofile; }
               if ($arg_empty) { return 500; }
               return 200 "$v $w $d $f";"#,
        );
        let text = |args: &str| match run_server(&cfg, "/", args).0 {
            Flow::Return { code: 200, text } => {
                String::from_utf8(text.unwrap_or_default()).unwrap_or_default()
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(text("x=1"), "one  dir nofile");
        assert_eq!(text("x=ab"), "re-ba notnum dir nofile");
        assert_eq!(text("x=7&empty="), "none  dir nofile");
        assert_eq!(text("x=7&empty=0"), "none  dir nofile");
        assert_eq!(
            run_server(&cfg, "/", "empty=yes").0,
            Flow::Return {
                code: 500,
                text: None
            }
        );
    }
}
