//! The `vfplex-webhook` binary.
fn main() {}
