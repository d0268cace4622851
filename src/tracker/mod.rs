//! tracker (being written).

pub mod schema;
