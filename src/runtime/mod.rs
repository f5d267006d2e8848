//! The serving side: listeners, router, upstream balancers and pools, proxy handler, logs.
//!
//! Works only from a compiled `Plan`; never sees the AST and never parses config strings on the
//! request path.

pub mod body;
pub mod ctx;
pub mod log;
pub mod proxy;
pub mod router;
pub mod server;
pub mod status;
pub mod upstream;
