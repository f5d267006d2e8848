//! AST to Plan: nginx's directive table (contexts, arity, value checks) and the compiler that turns a
//! checked AST into the typed `Plan` the runtime executes.
//!
//! Never touches the network except to resolve upstream names at load time (as nginx does), and never
//! needs a runtime.

pub mod template;
pub mod types;

pub use template::{Segment, Template, Var};
pub use types::*;

use std::net::SocketAddr;

/// Name resolution for `upstream` servers and `proxy_pass` hosts, injected so that `plan` itself
/// never does I/O: the CLI passes the system resolver, tests pass a fixed table.
pub trait Resolve {
    /// All addresses of `host` (no port); `Err` with the OS message when the name does not resolve.
    fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String>;
}
