//! `flex-provisioner`: crate scaffold; the provisioner lands with its issue.

fn main() {}
