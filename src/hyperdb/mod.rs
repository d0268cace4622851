//! hyperdb (being written).
