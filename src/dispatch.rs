//! dispatch (being written).
