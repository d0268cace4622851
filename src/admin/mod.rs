//! The administrative commands, on the top floor: they build trackers with the
//! same layers that serve them.
//!
//! * [`init`] creates a tracker directory from a template, with its database and
//!   initial data (as `roundup-admin install` + `initialise`).
//! * [`demo`] creates the demo tracker (as `roundup-demo`).
//! * [`convert`] writes `schema.toml` for an existing Roundup tracker.

pub mod convert;
pub mod demo;
pub mod init;
