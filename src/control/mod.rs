//! Process control: pid file, signals (`-s`), reload and shutdown.
