//! Shared helpers for integration tests.

#![allow(dead_code)]

pub mod conf_api {
    pub use nginx_rs::conf::parser::Parsed;
    pub use nginx_rs::conf::{Arg, ConfError, Directive, Quote, SourceFile, Span};
}

pub mod mini;
