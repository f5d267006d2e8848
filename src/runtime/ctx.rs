//! Per-request state and template rendering (`$host`, `$remote_addr`, captures, ...).
//! Owned by the server-side work; the proxy handler renders templates through `RequestCtx::render`.
