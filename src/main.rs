//! The `roundup-xmlrpc-server` binary (being written).

fn main() {}
