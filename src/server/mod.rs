//! The HTTP front end. It knows nothing of Roundup: it serves an [`RpcHandler`] over
//! HTTP/1.1 with the limits of a [`ServerConfig`].
//!
//! * [`accept`]: the accept loop ([`run`]): connection caps (overall and per client
//!   address), graceful shutdown.
//! * [`conn`]: one connection's phases (head, busy, idle) and their timeouts, and the
//!   lingering close.
//! * [`service`]: the hyper service: paths, methods, authorization before the body,
//!   the body limits and budget, the request deadline.
//! * [`body`]: request and response bodies (gzip in and out, reading within limits).
//! * [`budget`]: the global budget of request-body bytes in memory.
//! * [`refusal`]: every HTTP refusal and its response (the one mapping).
//! * [`peer`]: trusted proxies and the client address of a request; the CIDR type.
//! * [`handler`]: the [`RpcHandler`] trait the application implements.
//! * [`config`]: the [`ServerConfig`] of the front end.
//! * [`listen`]: the address to listen on, a host name resolved ([`BindAddr`]).
//! * [`systemd`]: socket activation and readiness notification.

pub mod accept;
pub mod body;
pub mod budget;
pub mod config;
pub mod conn;
pub mod handler;
pub mod listen;
pub mod peer;
pub mod refusal;
pub mod service;
pub mod systemd;

pub use accept::run;
pub use config::ServerConfig;
pub use handler::{Authorization, RpcCall, RpcHandler, RpcHead, RpcResponse};
pub use listen::{BindAddr, BindError};
pub use peer::{parse_net, resolve_peer, ForwardedHeader, IpNet, IpNetError};
pub use refusal::{RateLimit, RateLimited, Refusal};
pub use systemd::{notify_ready, notify_stopping, take_inherited_listener};
