//! The accept loop: connection caps (overall and per client address), graceful
//! shutdown, and one hyper HTTP/1 connection per accepted socket.
//!
//! [`run`] takes an already bound listener (so `main` and the tests share it) and a
//! shutdown future. Each accepted connection is served by hyper's HTTP/1 state machine
//! with the service in [`super::service`], over the phase-deadline I/O wrapper of
//! [`super::conn`].

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::budget::ByteBudget;
use super::config::ServerConfig;
use super::conn::{ConnActivity, DeadlineIo};
use super::handler::RpcHandler;
use super::peer::net_contains;
use super::refusal::{OVER_ADDRESS_CAP_RESPONSE, OVER_CAPACITY_RESPONSE};
use super::service::{HealthCheck, RpcService, Shared};
use crate::metrics::ConnRefusal;

/// Pause after a failed `accept()` (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Minimum interval between two "connection cap reached" warnings in the log.
const CAP_WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Serves HTTP/1 on `listener` until `shutdown` resolves, then stops accepting, gives
/// in-flight requests [`ServerConfig::shutdown_grace`] to finish, and returns.
///
/// Errors from individual connections (and from `accept`, which is retried after a
/// short pause) are logged, never returned.
pub async fn run(
    listener: TcpListener,
    handler: Arc<dyn RpcHandler>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let config = Arc::new(config);
    let shared = Arc::new(Shared {
        handler,
        config: Arc::clone(&config),
        blocking: Arc::new(Semaphore::new(config.max_blocking_handlers.max(1))),
        budget: ByteBudget::new(config.max_body_bytes_in_flight),
        health: HealthCheck::default(),
    });
    let connection_slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let address_slots = Arc::new(AddressSlots::new(config.max_connections_per_address));
    let mut over_address_cap = CapWarning::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .title_case_headers(true)
        .header_read_timeout(None)
        .max_headers(config.max_headers)
        .max_header_size(config.max_header_bytes);
    let builder = Arc::new(builder);
    let mut connections = JoinSet::new();
    let mut over_cap = CapWarning::default();

    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "listening");
    }
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (stream, tcp_peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                warn!(error = %err, "accept failed");
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => continue,
                }
            }
        };
        let Ok(slot) = Arc::clone(&connection_slots).try_acquire_owned() else {
            reject_over_capacity(&stream);
            drop(stream);
            config
                .metrics
                .connection_refused(ConnRefusal::MaxConnections);
            if let Some(rejected) = over_cap.rejected() {
                warn!(
                    max_connections = config.max_connections,
                    rejected, "connection cap reached; rejecting new connections"
                );
            }
            continue;
        };
        let trusted = config
            .trusted_proxies
            .iter()
            .any(|net| net_contains(net, tcp_peer.ip()));
        let address_slot = if trusted {
            None
        } else {
            match address_slots.try_acquire(tcp_peer.ip()) {
                Ok(slot) => slot,
                Err(()) => {
                    let _ = stream.try_write(OVER_ADDRESS_CAP_RESPONSE);
                    drop(stream);
                    config.metrics.connection_refused(ConnRefusal::PerAddress);
                    if let Some(rejected) = over_address_cap.rejected() {
                        warn!(
                            peer = %tcp_peer.ip(),
                            max_connections_per_address = config.max_connections_per_address,
                            rejected,
                            "per-address connection cap reached; rejecting its new connections"
                        );
                    }
                    continue;
                }
            }
        };
        // Latency matters more than packet count for small RPC answers.
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(ConnActivity::new());
        let io = TokioIo::new(DeadlineIo::new(stream, Arc::clone(&activity), &config));
        let service = RpcService::new(Arc::clone(&shared), tcp_peer, activity);
        let builder = Arc::clone(&builder);
        let mut stop = stop_rx.clone();
        let open = config.metrics.connection_opened();
        connections.spawn(async move {
            let _slot = slot;
            let _address_slot = address_slot;
            let _open = open;
            let conn = builder.serve_connection(io, service);
            tokio::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(err) = result {
                debug!(peer = %tcp_peer, error = %err, "connection ended with an error");
            }
        });
    }

    drop(listener);
    let in_flight = connections.len();
    info!(connections = in_flight, "shutting down");
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(config.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            connections = connections.len(),
            "shutdown grace period over; dropping remaining connections"
        );
        connections.shutdown().await;
    }
    info!("server stopped");
    Ok(())
}

/// Counts connections refused at a cap, for a warning at most every
/// [`CAP_WARN_INTERVAL`].
#[derive(Debug, Default)]
struct CapWarning {
    rejected: u64,
    last: Option<Instant>,
}

impl CapWarning {
    /// Counts one refusal; `Some(refusals since the last warning)` when it is time to
    /// warn again.
    fn rejected(&mut self) -> Option<u64> {
        self.rejected += 1;
        if self.last.is_some_and(|at| at.elapsed() < CAP_WARN_INTERVAL) {
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.rejected))
    }
}

/// Writes the canned 503 if the socket accepts it right away; never blocks.
fn reject_over_capacity(stream: &TcpStream) {
    let _ = stream.try_write(OVER_CAPACITY_RESPONSE);
}

/// Open connections per client address, for
/// [`ServerConfig::max_connections_per_address`]. IPv6 peers are counted per /64, the
/// smallest network a single host usually gets.
#[derive(Debug)]
struct AddressSlots {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection counted in [`AddressSlots`]; uncounted on drop.
#[derive(Debug)]
struct AddressSlot {
    slots: Arc<AddressSlots>,
    key: IpAddr,
}

impl AddressSlots {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// The counting key of a peer address: IPv4 as is, IPv6 its /64.
    fn key(ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V6(v6) => IpAddr::from((u128::from(v6) & !u128::from(u64::MAX)).to_be_bytes()),
            v4 => v4,
        }
    }

    /// Counts one more connection from `ip`: `Ok(None)` without a cap, `Err` when
    /// the address is at its cap.
    fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<Option<AddressSlot>, ()> {
        if self.limit == 0 {
            return Ok(None);
        }
        let key = Self::key(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key).or_insert(0);
        if *count >= self.limit {
            return Err(());
        }
        *count += 1;
        Ok(Some(AddressSlot {
            slots: Arc::clone(self),
            key,
        }))
    }

    #[cfg(test)]
    fn open_from(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&Self::key(ip)).copied().unwrap_or(0)
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self
            .slots
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_slots_cap_each_address() {
        let slots = Arc::new(AddressSlots::new(2));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = slots.try_acquire(a).unwrap().expect("counted");
        let _a2 = slots.try_acquire(a).unwrap().expect("counted");
        assert!(slots.try_acquire(a).is_err(), "third from a");
        // v4-mapped IPv6 is the same client.
        assert!(slots
            .try_acquire("::ffff:192.0.2.1".parse().unwrap())
            .is_err());
        let _b1 = slots.try_acquire(b).unwrap().expect("other address");
        drop(a1);
        assert_eq!(slots.open_from(a), 1);
        let _a3 = slots.try_acquire(a).unwrap().expect("freed slot");
        assert!(slots.try_acquire(a).is_err());
    }

    #[test]
    fn address_slots_count_ipv6_per_64() {
        let slots = Arc::new(AddressSlots::new(1));
        let _x = slots
            .try_acquire("2001:db8:1:2::1".parse().unwrap())
            .unwrap();
        assert!(slots
            .try_acquire("2001:db8:1:2:ffff::9".parse().unwrap())
            .is_err());
        assert!(slots
            .try_acquire("2001:db8:1:3::1".parse().unwrap())
            .is_ok());
    }

    #[test]
    fn address_slots_zero_is_no_cap_and_entries_are_freed() {
        let none = Arc::new(AddressSlots::new(0));
        let ip: IpAddr = "10.1.1.1".parse().unwrap();
        for _ in 0..1000 {
            assert!(none.try_acquire(ip).unwrap().is_none());
        }
        let slots = Arc::new(AddressSlots::new(3));
        let held: Vec<_> = (0..3).map(|_| slots.try_acquire(ip).unwrap()).collect();
        drop(held);
        assert!(
            slots.open.lock().unwrap().is_empty(),
            "no entry left behind"
        );
    }
}
