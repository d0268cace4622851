//! roundup-xmlrpc-server: a Rust re-implementation of Roundup's standalone XML-RPC daemon.
//!
//! The request path reads top to bottom through the modules:
//!
//! * [`server`] accepts connections (caps, timeouts, graceful shutdown), runs the
//!   hyper service (paths, methods, body limits and budget, gzip, the call deadline)
//!   and answers every HTTP refusal; it calls the
//! * [`app`], which resolves the tracker, logs the caller in ([`auth`]) and checks
//!   `Xmlrpc Access` from the request head, then decodes the body ([`xmlrpc`]) and
//!   runs the call through
//! * [`api`], one file per Roundup method plus multicall and introspection; each call
//!   runs in its own transaction ([`api::Caller`]), checks permissions
//!   ([`security`]) and changes items through
//! * [`items`] (create/set/retire/restore, keys, journal, and the classic detectors),
//!   which read and write through the storage trait [`store`], implemented by
//!   [`sqlite`] and [`postgres`].
//! * [`error`] is the one place where typed errors and decode failures become
//!   XML-RPC faults.
//!
//! # Floors
//!
//! Each top-level module sits on one floor and imports only from lower floors (no
//! import cycle between top-level modules):
//!
//! 0. Leaves, importing nothing of the crate: [`hyperdb`] (Roundup's dates and
//!    intervals), [`xmlrpc`] (value model, hardened decoder, encoder), [`auth`]
//!    (Basic header, password schemes, credential cache, limiter), [`deadline`] (a
//!    call's deadline and the interrupter of its read), [`failpoint`], [`log`]
//!    (the log formats, escaped log fields), [`metrics`] (the Prometheus metrics and
//!    their bounded labels), [`cli`] (the flag definitions), [`schema`] (the schema
//!    model, its loaders and the check-condition language).
//! 1. [`server`] (the HTTP front end; knows nothing of Roundup), [`store`] (the
//!    storage trait, filter model, Python repr text, [`store::WatchedTx`], and
//!    what both backends share: the content-file protocol, a class table's row
//!    layout, the `schema` row, the in-memory sort, the indexer's words).
//! 2. [`config`] (one typed [`config::Settings`] per tracker from config.ini; the
//!    flags merged with it for the front end), [`security`] (roles, grants,
//!    hasPermission), [`error`].
//! 3. [`sqlite`] (the SQLite backend, Roundup 2.6's layout), [`postgres`] (the
//!    PostgreSQL backend, Roundup 2.6's layout there; several daemons on one
//!    database), [`mail`] (nosy mail: message, outbox, delivery thread),
//!    [`pyworker`] (the worker process that runs a tracker's own Python detectors:
//!    process, frames, values).
//! 4. [`tracker`]: an open tracker (name, directory, schema, security, settings,
//!    store, outbox).
//! 5. [`items`] (Roundup's hyperdb operations; the detectors in [`items::detectors`],
//!    Python ones fired through [`items::detectors::python`], whose database calls
//!    the API layer answers: `api::pydb`, handed down in each call's context).
//! 6. [`api`] (the method table, [`api::call`], dispatch).
//! 7. [`app`] (tracker routing, login and limiters; implements
//!    [`server::RpcHandler`]).
//! 8. [`admin`] (`init`, `demo`, `convert-schema`), then `main.rs`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod deadline;
pub mod error;
pub mod failpoint;
pub mod hyperdb;
pub mod items;
pub mod log;
pub mod mail;
pub mod metrics;
pub mod postgres;
pub mod pyworker;
pub mod schema;
pub mod security;
pub mod server;
pub mod sqlite;
pub mod store;
pub mod tracker;
pub mod xmlrpc;
