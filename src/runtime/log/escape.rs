//! The three `log_format escape=` modes, byte for byte as nginx's `ngx_http_log_escape` and
//! `ngx_escape_json`. Escaping applies to variable values only, never to the format's literal text.

use crate::plan::LogEscape;

/// Appends `value` escaped for `mode`.
pub fn escape_into(mode: LogEscape, value: &[u8], out: &mut Vec<u8>) {
    match mode {
        LogEscape::Default => escape_default(value, out),
        LogEscape::Json => escape_json(value, out),
        LogEscape::None => out.extend_from_slice(value),
    }
}

/// What a variable that has no value (`not_found`) writes: `-` by default, nothing for `json`/`none`.
pub fn missing(mode: LogEscape) -> &'static [u8] {
    match mode {
        LogEscape::Default => b"-",
        LogEscape::Json | LogEscape::None => b"",
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Whether [`escape_into`] would change `value`.
pub fn needs_escape(mode: LogEscape, value: &[u8]) -> bool {
    match mode {
        LogEscape::Default => value.iter().any(|&b| default_escapes(b)),
        LogEscape::Json => value.iter().any(|&b| json_escapes(b)),
        LogEscape::None => false,
    }
}

/// The bytes `escape=default` rewrites.
fn default_escapes(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\' || b >= 0x7f
}

/// The bytes `escape=json` rewrites (`"`, `\` and control bytes).
fn json_escapes(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// `escape=default`: `"`, `\`, control bytes, DEL and every byte >= 0x80 become `\xHH` (uppercase).
pub fn escape_default(value: &[u8], out: &mut Vec<u8>) {
    for &b in value {
        if default_escapes(b) {
            out.extend_from_slice(&[b'\\', b'x', HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]]);
        } else {
            out.push(b);
        }
    }
}

/// `escape=json`: `"` and `\` backslashed; `\n \r \t \b \f` short forms; other control bytes
/// `\u00HH` (uppercase); bytes >= 0x7f pass through unchanged, as nginx does.
pub fn escape_json(value: &[u8], out: &mut Vec<u8>) {
    for &b in value {
        match b {
            b'"' | b'\\' => out.extend_from_slice(&[b'\\', b]),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0..=0x1f => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xf) as usize]);
            }
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(mode: LogEscape, v: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        escape_into(mode, v, &mut out);
        out
    }

    #[test]
    fn default_mode() {
        assert_eq!(esc(LogEscape::Default, b"a b/c?d=e"), b"a b/c?d=e");
        assert_eq!(esc(LogEscape::Default, b"q\"b\\"), b"q\\x22b\\x5C");
        assert_eq!(
            esc(LogEscape::Default, b"\x01\n\x7f\xff~"),
            b"\\x01\\x0A\\x7F\\xFF~"
        );
        assert_eq!(esc(LogEscape::Default, "é".as_bytes()), b"\\xC3\\xA9");
    }

    #[test]
    fn json_mode() {
        assert_eq!(esc(LogEscape::Json, b"q\"b\\"), b"q\\\"b\\\\");
        assert_eq!(esc(LogEscape::Json, b"\n\r\t\x08\x0c"), b"\\n\\r\\t\\b\\f");
        assert_eq!(esc(LogEscape::Json, b"\x01\x1f"), b"\\u0001\\u001F");
        assert_eq!(esc(LogEscape::Json, "é\x7f".as_bytes()), "é\x7f".as_bytes());
    }

    #[test]
    fn none_mode_and_missing() {
        assert_eq!(esc(LogEscape::None, b"\"\n"), b"\"\n");
        assert_eq!(missing(LogEscape::Default), b"-");
        assert_eq!(missing(LogEscape::Json), b"");
    }
}
