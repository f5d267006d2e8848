//! `access_log` at run time: a compiled format, a destination file and an optional `if=` condition.

use std::path::Path;
use std::sync::Arc;

use crate::plan::{AccessLog, LogFormat, Segment, Template};

use super::format::{render_into, render_line, VarSource};
use super::writer::{LogFile, LogWriter, OpenError};

enum Dest {
    File(LogFile),
    /// A path with variables: resolved per request, opened on first use (nginx forbids `buffer=` here).
    Dynamic(Template, Arc<LogWriter>),
}

/// One `access_log` directive, ready to log.
pub struct AccessSink {
    dest: Dest,
    format: Arc<LogFormat>,
    condition: Option<Template>,
}

impl AccessSink {
    /// Opens the destination now (at config load) when the path has no variables.
    pub fn open(
        conf: &AccessLog,
        writer: &Arc<LogWriter>,
    ) -> Result<Option<AccessSink>, OpenError> {
        let Some(path) = &conf.path else {
            return Ok(None); // access_log off
        };
        let dest = match path.as_literal() {
            Some(p) => Dest::File(writer.open(Path::new(p), conf.buffer, conf.flush)?),
            None => Dest::Dynamic(path.clone(), Arc::clone(writer)),
        };
        Ok(Some(AccessSink {
            dest,
            format: Arc::clone(&conf.format),
            condition: conf.condition.clone(),
        }))
    }

    /// Formats and queues the line for a finished request. Never blocks on I/O (except the first
    /// use of a path with variables, which opens the file).
    pub fn log(&self, vars: &dyn VarSource) {
        if let Some(cond) = &self.condition {
            let v = render(cond, vars);
            if v.is_empty() || v == b"0" {
                return;
            }
        }
        match &self.dest {
            Dest::File(f) => f.write_with(|out| render_into(&self.format, vars, out)),
            Dest::Dynamic(t, writer) => {
                let line = render_line(&self.format, vars);
                let p = render(t, vars);
                let Ok(p) = std::str::from_utf8(&p) else {
                    return;
                };
                if let Ok(f) = writer.open(Path::new(p), None, None) {
                    f.write(line);
                }
            }
        }
    }
}

/// A template's plain value (no escaping; missing variables are empty), for `if=` and dynamic paths.
pub fn render(t: &Template, vars: &dyn VarSource) -> Vec<u8> {
    let mut out = Vec::new();
    for seg in &t.segments {
        match seg {
            Segment::Literal(s) => out.extend_from_slice(s.as_bytes()),
            Segment::Var(v) => {
                if let Some(val) = vars.var(v) {
                    out.extend_from_slice(&val);
                }
            }
        }
    }
    out
}

/// Opens every `access_log` of a location (`off` entries produce nothing).
pub fn open_all(
    confs: &[AccessLog],
    writer: &Arc<LogWriter>,
) -> Result<Vec<AccessSink>, OpenError> {
    let mut out = Vec::with_capacity(confs.len());
    for c in confs {
        if let Some(s) = AccessSink::open(c, writer)? {
            out.push(s);
        }
    }
    Ok(out)
}
