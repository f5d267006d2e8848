//! nginx tokenizer (owned by the conf work).
