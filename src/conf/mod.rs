//! Text to AST: nginx's tokenizer rules, a nom parser, and `include` expansion.
//!
//! Never touches the network, never gives a directive meaning: that is `plan`'s job.
//! Entry points: [`load_file`] (a file and its includes), [`parse_bytes`] (text in memory),
//! [`parse_param`] (the `-g` flag), and [`dump()`] (a stable text form of the tree for tests).

pub mod ast;
pub mod dump;
pub mod error;
pub mod include;
pub mod lexer;
pub mod parser;
pub mod reader;
pub mod text;

pub use ast::{Arg, Directive, FileName, Quote, SourceFile, Span};
pub use dump::dump;
pub use error::{ConfError, Level, Origin};
pub use parser::{load_file, parse_bytes, parse_param, LoadOptions, Parsed};
pub use reader::{Event, Reader};
pub use text::Text;
