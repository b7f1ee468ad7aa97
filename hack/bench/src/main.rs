//! Benchmarks and chaos suite: scaffold; lands with issue 9.

fn main() {}
