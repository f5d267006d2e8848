//! Turning a `log_format` and one finished request into a log line.
//!
//! The runtime supplies variable values through [`VarSource`]; this module owns only what nginx's log
//! module owns: literal text verbatim, each variable escaped per the format's `escape=` mode, a missing
//! variable written as `-` (default mode) or nothing (`json`, `none`), and the trailing newline.

use std::borrow::Cow;
use std::sync::Arc;

use crate::plan::{LogEscape, LogFormat, Segment, Template, Var};

use super::escape::{escape_into, missing, needs_escape};

/// nginx's predefined format, as its source has it.
pub const COMBINED_TEXT: &str = "$remote_addr - $remote_user [$time_local] \"$request\" $status \
                                 $body_bytes_sent \"$http_referer\" \"$http_user_agent\"";

/// The values of variables for one request, as the runtime knows them at log time.
pub trait VarSource {
    /// The raw value, or `None` when nginx would say "not found" (e.g. no `Referer` header).
    fn var(&self, var: &Var) -> Option<Cow<'_, [u8]>>;

    /// Appends the raw value to `out`; false (nothing appended) when it is "not found". Sources
    /// that can write in place override this to save an allocation and a copy per variable.
    fn append_var(&self, var: &Var, out: &mut Vec<u8>) -> bool {
        match self.var(var) {
            Some(v) => {
                out.extend_from_slice(&v);
                true
            }
            None => false,
        }
    }
}

/// The predefined `combined` format as a compiled [`LogFormat`].
pub fn combined() -> LogFormat {
    let lit = |s: &str| Segment::Literal(Arc::from(s));
    let var = Segment::Var;
    LogFormat {
        name: "combined".to_string(),
        escape: LogEscape::Default,
        template: Template {
            segments: vec![
                var(Var::RemoteAddr),
                lit(" - "),
                var(Var::RemoteUser),
                lit(" ["),
                var(Var::TimeLocal),
                lit("] \""),
                var(Var::Request),
                lit("\" "),
                var(Var::Status),
                lit(" "),
                var(Var::BodyBytesSent),
                lit(" \""),
                var(Var::HttpReferer),
                lit("\" \""),
                var(Var::HttpUserAgent),
                lit("\""),
            ],
        },
    }
}

/// One log line for `format`, newline included.
pub fn render_line(format: &LogFormat, vars: &dyn VarSource) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    render_into(format, vars, &mut out);
    out
}

/// Appends one log line, newline included, to `out` (a log batch: no allocation per line).
pub fn render_into(format: &LogFormat, vars: &dyn VarSource, out: &mut Vec<u8>) {
    for seg in &format.template.segments {
        match seg {
            Segment::Literal(s) => out.extend_from_slice(s.as_bytes()),
            Segment::Var(v) => {
                let start = out.len();
                if vars.append_var(v, out) {
                    if !escape_free(v) {
                        escape_tail(format.escape, out, start);
                    }
                } else {
                    out.extend_from_slice(missing(format.escape));
                }
            }
        }
    }
    out.push(b'\n');
}

/// Variables whose values nginx-rs writes itself from digits, dots, colons, commas, spaces,
/// dashes and letters: nothing in them is ever escaped, so they are not scanned (most of the
/// combined format's bytes are in such variables).
fn escape_free(v: &Var) -> bool {
    matches!(
        v,
        Var::RemoteAddr
            | Var::RemotePort
            | Var::RealipRemoteAddr
            | Var::ServerPort
            | Var::Pid
            | Var::Msec
            | Var::TimeLocal
            | Var::TimeIso8601
            | Var::RequestTime
            | Var::RequestLength
            | Var::Status
            | Var::BodyBytesSent
            | Var::BytesSent
            | Var::Connection
            | Var::ConnectionRequests
            | Var::UpstreamStatus
            | Var::UpstreamResponseTime
            | Var::UpstreamConnectTime
            | Var::UpstreamHeaderTime
    )
}

/// Escapes `out[start..]` in place; a value that needs no escaping (nearly all) stays as written.
fn escape_tail(mode: LogEscape, out: &mut Vec<u8>, start: usize) {
    if needs_escape(mode, &out[start..]) {
        let raw = out.split_off(start);
        escape_into(mode, &raw, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<(Var, &'static [u8])>);

    impl VarSource for Fixed {
        fn var(&self, var: &Var) -> Option<Cow<'_, [u8]>> {
            self.0
                .iter()
                .find(|(v, _)| v == var)
                .map(|(_, val)| Cow::Borrowed(*val))
        }
    }

    #[test]
    fn combined_line() {
        let vars = Fixed(vec![
            (Var::RemoteAddr, b"127.0.0.1"),
            (Var::TimeLocal, b"27/Nov/2026:04:54:37 +0000"),
            (Var::Request, b"GET /a?b=\"c\" HTTP/1.1"),
            (Var::Status, b"200"),
            (Var::BodyBytesSent, b"0"),
            (Var::HttpUserAgent, b"curl/7.88.1"),
        ]);
        let line = render_line(&combined(), &vars);
        assert_eq!(
            String::from_utf8_lossy(&line),
            "127.0.0.1 - - [27/Nov/2026:04:54:37 +0000] \"GET /a?b=\\x22c\\x22 HTTP/1.1\" 200 0 \"-\" \
             \"curl/7.88.1\"\n"
        );
    }

    #[test]
    fn json_format_missing_is_empty() {
        let fmt = LogFormat {
            name: "j".into(),
            escape: LogEscape::Json,
            template: Template {
                segments: vec![
                    Segment::Literal("{\"ua\":\"".into()),
                    Segment::Var(Var::HttpUserAgent),
                    Segment::Literal("\",\"ref\":\"".into()),
                    Segment::Var(Var::HttpReferer),
                    Segment::Literal("\"}".into()),
                ],
            },
        };
        let vars = Fixed(vec![(Var::HttpUserAgent, b"a\"b\n")]);
        assert_eq!(
            render_line(&fmt, &vars),
            b"{\"ua\":\"a\\\"b\\n\",\"ref\":\"\"}\n"
        );
    }
}
