//! The `whatif` command-line interface.
fn main() {}
