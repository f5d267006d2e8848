//! The rewrite module's steps: `return`, `set`, `break`, `rewrite`, and `if` conditions.

use crate::conf::Directive;

use super::types::*;
use super::values;
use super::walk::{Res, Target, Walker};

impl Walker<'_> {
    pub(super) fn rewrite_op(&mut self, d: &Directive, tgt: &Target) -> Res<RewriteOp> {
        let ec = self.ec();
        let sp = &d.span;
        let _ = tgt;
        let a = |i: usize| d.args.get(i).map(|a| a.value.as_str()).unwrap_or("");
        match d.name.as_str() {
            "break" => Ok(RewriteOp::Break),
            "return" => {
                let v = a(0);
                let is_url = |s: &str| {
                    s.starts_with("http://")
                        || s.starts_with("https://")
                        || s.starts_with("$scheme")
                };
                let (code, body) = match values::parse_number(v) {
                    None if d.args.len() == 1 && is_url(v) => (302, Some(v)),
                    Some(c) if c <= 999 => (c as u16, d.args.get(1).map(|x| x.value.as_str())),
                    _ => return Err(ec.e(format!("invalid return code \"{v}\""), sp)),
                };
                let body = match body {
                    Some(b) => Some(self.tpl(b, sp)?),
                    None => None,
                };
                Ok(RewriteOp::Return {
                    code,
                    body,
                    span: sp.clone(),
                })
            }
            "set" => {
                let v = a(0);
                let Some(var) = v.strip_prefix('$').filter(|n| !n.is_empty()) else {
                    return Err(ec.e(format!("invalid variable name \"{v}\""), sp));
                };
                if super::vars::builtin(var).is_some() || self.vars.is_map(var) {
                    return Err(ec.e(format!("the duplicate \"{var}\" variable"), sp));
                }
                let slot = match self.vars.define(var) {
                    super::Var::Slot(s) => s,
                    _ => return Err(ec.e(format!("the duplicate \"{var}\" variable"), sp)),
                };
                let value = self.tpl(a(1), sp)?;
                Ok(RewriteOp::Set {
                    slot,
                    value,
                    span: sp.clone(),
                })
            }
            _ => {
                // rewrite REGEX REPLACEMENT [FLAG]
                let regex = self.vars.regex(a(0), false).map_err(|m| ec.e(m, sp))?;
                let repl = a(1);
                let mut flag = match d.args.get(2).map(|x| x.value.as_str()) {
                    None => RewriteFlag::None,
                    Some("last") => RewriteFlag::Last,
                    Some("break") => RewriteFlag::Break,
                    Some("redirect") => RewriteFlag::Redirect,
                    Some("permanent") => RewriteFlag::Permanent,
                    Some(x) => {
                        return Err(self.err_arg(format!("invalid parameter \"{x}\""), d, 2))
                    }
                };
                // nginx: a replacement that starts with a scheme always redirects (302 by default).
                if flag == RewriteFlag::None
                    && (repl.starts_with("http://")
                        || repl.starts_with("https://")
                        || repl.starts_with("$scheme"))
                {
                    flag = RewriteFlag::Redirect;
                }
                let replacement = self.tpl(repl, sp)?;
                Ok(RewriteOp::Rewrite {
                    regex: Box::new(regex),
                    replacement,
                    flag,
                    span: sp.clone(),
                })
            }
        }
    }

    /// `ngx_http_rewrite_if_condition`.
    pub(super) fn condition(&mut self, d: &Directive) -> Res<Condition> {
        let mut args: Vec<String> = d.args.iter().map(|a| a.value.to_string()).collect();
        // The parentheses are part of the first and last words.
        let first = &mut args[0];
        if first == "(" {
            args.remove(0);
        } else if let Some(rest) = first.strip_prefix('(') {
            *first = rest.to_string();
        } else {
            return Err(self.err(
                format!("invalid condition \"{}\"", d.args[0].value),
                &d.span,
            ));
        }
        let Some(last) = args.last_mut() else {
            return Err(self.err("invalid condition \"(\"", &d.span));
        };
        if last == ")" {
            args.pop();
        } else if let Some(rest) = last.strip_suffix(')') {
            *last = rest.to_string();
        } else {
            let l = d.args.last().map(|a| a.value.as_str()).unwrap_or("");
            return Err(self.err(format!("invalid condition \"{l}\""), &d.span));
        }
        if args.is_empty() || args[0].is_empty() {
            return Err(self.err("invalid condition \"(\"", &d.span));
        }
        let t = |w: &mut Walker, s: &str| w.vars.template(s).map_err(|m| w.err(m, &d.span));
        if args[0].starts_with('$') {
            let var = t(self, &args[0])?;
            match args.len() {
                1 => return Ok(Condition::Var(var)),
                3 => {}
                _ => return Err(self.err(format!("invalid condition \"{}\"", args[0]), &d.span)),
            }
            let op = args[1].as_str();
            return match op {
                "=" | "!=" => Ok(Condition::Eq(var, t(self, &args[2])?, op == "!=")),
                "~" | "~*" | "!~" | "!~*" => {
                    let re = self
                        .vars
                        .regex(&args[2], op.ends_with('*'))
                        .map_err(|m| self.err(m, &d.span))?;
                    Ok(Condition::Regex(var, re, op.starts_with('!')))
                }
                _ => Err(self.err(format!("unexpected \"{op}\" in condition"), &d.span)),
            };
        }
        let (neg, test) = match args[0].strip_prefix('!') {
            Some(r) => (true, r),
            None => (false, args[0].as_str()),
        };
        let ft = match test {
            "-f" => Some(FileTest::File),
            "-d" => Some(FileTest::Dir),
            "-e" => Some(FileTest::Exists),
            "-x" => Some(FileTest::Exec),
            _ => None,
        };
        match (ft, args.len()) {
            (Some(ft), 2) => Ok(Condition::File(ft, t(self, &args[1])?, neg)),
            _ => Err(self.err(format!("invalid condition \"{}\"", args[0]), &d.span)),
        }
    }
}
