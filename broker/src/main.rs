//! extbus binary entry point.
fn main() {}
