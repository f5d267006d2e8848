//! Text to AST: nginx's tokenizer rules, a nom parser, and `include` expansion.
//!
//! Never touches the network, never gives a directive meaning: that is `plan`'s job.

pub mod ast;
pub mod error;
pub mod lexer;
pub mod parser;

pub use ast::{Arg, Directive, Quote, SourceFile, Span};
pub use error::{ConfError, Level, Origin};
