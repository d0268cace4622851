//! roundup-xmlrpc-server: a Rust re-implementation of Roundup's standalone XML-RPC daemon.
//!
//! The request path reads top to bottom through the modules:
//!
//! * [`server`] accepts connections (cap, timeouts, graceful shutdown) and hands them to
//! * [`http`], the hyper service (paths, methods, body limits, gzip), which calls the
//! * [`app`], which resolves the tracker, authenticates ([`auth`]), decodes the body
//!   ([`xmlrpc`]) and dispatches ([`dispatch`]) to
//! * [`api`], one file per Roundup method, which checks permissions ([`security`]),
//!   runs the detectors ([`detectors`]) and reads and writes through [`store`].
//! * [`error`] is the one place where typed errors become XML-RPC faults.
//!
//! [`tracker`] loads a tracker directory (schema.toml, config.ini) and creates new
//! ones; [`hyperdb`] holds Roundup's value types (dates, intervals).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod app;
pub mod auth;
pub mod budget;
pub mod cli;
pub mod deadline;
pub mod detectors;
pub mod dispatch;
pub mod error;
pub mod failpoint;
pub mod http;
pub mod hyperdb;
pub mod items;
pub mod log;
pub mod security;
pub mod server;
pub mod store;
pub mod tracker;
pub mod xmlrpc;
