//! `error_log`, `log_format` and `access_log`: nginx's log module values and messages.

use crate::conf::{Directive, Level};

use super::types::*;
use super::values;
use super::walk::Res;
use super::walk::Walker;

impl Walker<'_> {
    pub(super) fn error_log(&mut self, d: &Directive) -> Res<ErrorLog> {
        let ec = self.ec();
        let target = d.args[0].value.as_str();
        let path = if target == "stderr" {
            None
        } else if target.starts_with("syslog:") || target.starts_with("memory:") {
            return Err(ec.e(
                format!("\"{target}\" in \"error_log\" is not supported by nginx-rs"),
                &d.span,
            ));
        } else {
            // Relative to the prefix, as nginx resolves it (at every level, not only main).
            Some(self.opts.prefix.join(target))
        };
        let level = match d.args.len() {
            1 => Level::Error,
            2 => Level::parse(&d.args[1].value).ok_or_else(|| {
                ec.e(
                    format!("invalid log level \"{}\"", d.args[1].value),
                    &d.span,
                )
            })?,
            _ => {
                return Err(ec.e(
                    format!("invalid log level \"{}\"", d.args[2].value),
                    &d.span,
                ))
            }
        };
        Ok(ErrorLog {
            path,
            level,
            span: Some(d.span.clone()),
        })
    }

    pub(super) fn log_format(&mut self, d: &Directive) -> Res<()> {
        let ec = self.ec();
        let name = d.args[0].value.clone();
        if self.log_formats.iter().any(|f| f.name == name) {
            return Err(ec.e(format!("duplicate \"log_format\" name \"{name}\""), &d.span));
        }
        let mut rest = &d.args[1..];
        let mut escape = LogEscape::Default;
        if let Some(e) = rest[0].value.strip_prefix("escape=") {
            escape = match e {
                "default" => LogEscape::Default,
                "json" => LogEscape::Json,
                "none" => LogEscape::None,
                _ => return Err(ec.e(format!("unknown log format escaping \"{e}\""), &d.span)),
            };
            rest = &rest[1..];
            if rest.is_empty() {
                return Err(ec.e(
                    "invalid number of arguments in \"log_format\" directive",
                    &d.span,
                ));
            }
        }
        let text: String = rest.iter().map(|a| a.value.as_str()).collect();
        let template = self.tpl(&text, &d.span)?;
        self.log_formats.push(std::sync::Arc::new(LogFormat {
            name: name.to_string(),
            escape,
            template,
        }));
        Ok(())
    }

    pub(super) fn access_log(&mut self, d: &Directive) -> Res<AccessLog> {
        let ec = self.ec();
        let sp = &d.span;
        let path = d.args[0].value.as_str();
        let combined_fmt = self
            .log_formats
            .iter()
            .find(|f| f.name == "combined")
            .cloned();
        let combined = || combined_fmt.clone();
        if path == "off" {
            if d.args.len() > 1 {
                return Err(ec.e(
                    "invalid parameter \"".to_string() + &d.args[1].value + "\"",
                    sp,
                ));
            }
            let format = combined().ok_or_else(|| ec.e("unknown log format \"combined\"", sp))?;
            return Ok(AccessLog {
                path: None,
                format,
                buffer: None,
                flush: None,
                condition: None,
            });
        }
        if path.starts_with("syslog:") {
            return Err(ec.e(
                format!("\"{path}\" in \"access_log\" is not supported by nginx-rs"),
                sp,
            ));
        }
        let path_t = self.tpl(path, sp)?;
        let mut i = 1;
        let format = match d.args.get(1) {
            Some(f) if !f.value.contains('=') => {
                i = 2;
                self.log_formats
                    .iter()
                    .find(|x| x.name == f.value)
                    .cloned()
                    .ok_or_else(|| ec.e(format!("unknown log format \"{}\"", f.value), sp))?
            }
            _ => combined().ok_or_else(|| ec.e("unknown log format \"combined\"", sp))?,
        };
        let (mut buffer, mut flush, mut condition) = (None, None, None);
        for x in &d.args[i..] {
            let v = x.value.as_str();
            let bad = || ec.e(format!("invalid parameter \"{v}\""), sp);
            if let Some(s) = v.strip_prefix("buffer=") {
                buffer = Some(
                    values::parse_size(s)
                        .ok_or_else(|| ec.e(format!("invalid buffer size \"{s}\""), sp))?
                        as usize,
                );
            } else if let Some(s) = v.strip_prefix("flush=") {
                flush = Some(
                    values::parse_time(s)
                        .filter(|t| !t.is_zero())
                        .ok_or_else(|| ec.e(format!("invalid flush time \"{s}\""), sp))?,
                );
            } else if let Some(s) = v.strip_prefix("if=") {
                condition = Some(self.tpl(s, sp)?);
            } else if v.starts_with("gzip") {
                return Err(ec.e(
                    "\"gzip\" in \"access_log\" is not supported by nginx-rs",
                    sp,
                ));
            } else {
                return Err(bad());
            }
        }
        if flush.is_some() && buffer.is_none() {
            buffer = Some(64 * 1024);
        }
        Ok(AccessLog {
            path: Some(path_t),
            format,
            buffer,
            flush,
            condition,
        })
    }
}
