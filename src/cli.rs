//! Command-line flags, nginx's: `-t`, `-T`, `-c`, `-p`, `-g`, `-s`, `-q`, `-e`, `-v`, `-V`.
//! Owned by the plan work.

/// Entry point for the binary; returns the process exit code.
pub fn main() -> i32 {
    0
}
