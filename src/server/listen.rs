//! Where to listen: an IP address or a host name and a port ([`BindAddr`]), resolved
//! and bound once at start-up ([`bind`]).
//!
//! A host name is resolved by the system resolver; of its addresses, IPv4 ones come
//! first (each family in the resolver's order), and the server listens on the first
//! that can be bound: one listening socket, as with an address or a socket from
//! systemd. So `localhost` is `127.0.0.1` (or `::1` where IPv4 is not available).

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpListener;

/// An address to listen on, as given: `host` is an IP address (IPv6 with or
/// without brackets) or a host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindAddr {
    /// The address or host name.
    pub host: String,
    /// The TCP port (0: any free port).
    pub port: u16,
}

impl BindAddr {
    /// `ip:port`.
    pub fn ip(ip: IpAddr, port: u16) -> BindAddr {
        BindAddr {
            host: ip.to_string(),
            port,
        }
    }

    /// The host as an IP address, when it is one.
    fn literal(&self) -> Option<IpAddr> {
        let host = self
            .host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&self.host);
        host.parse().ok()
    }
}

impl fmt::Display for BindAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.literal() {
            Some(ip) => SocketAddr::new(ip, self.port).fmt(f),
            None => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

/// Why [`bind`] found nothing to listen on.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The host name does not resolve (or resolves to no address).
    #[error("cannot resolve {host:?}: {reason}")]
    Resolve {
        /// The name.
        host: String,
        /// The resolver's answer.
        reason: String,
    },
    /// No address could be bound; the error of the last one tried.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// The addresses of `addr` to try, in order: the IP address itself, or the
/// resolved addresses of a host name, IPv4 first, without duplicates.
pub async fn resolve(addr: &BindAddr) -> Result<Vec<SocketAddr>, BindError> {
    if let Some(ip) = addr.literal() {
        return Ok(vec![SocketAddr::new(ip, addr.port)]);
    }
    let resolve_error = |reason: String| BindError::Resolve {
        host: addr.host.clone(),
        reason,
    };
    if addr.host.is_empty() {
        return Err(resolve_error("empty host name".into()));
    }
    let found = tokio::net::lookup_host((addr.host.as_str(), addr.port))
        .await
        .map_err(|e| resolve_error(e.to_string()))?;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for a in found {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    // Stable: each family keeps the resolver's order.
    addrs.sort_by_key(|a| a.is_ipv6());
    if addrs.is_empty() {
        return Err(resolve_error("no address".into()));
    }
    Ok(addrs)
}

/// Listens on the first address of `addr` ([`resolve`]) that can be bound.
pub async fn bind(addr: &BindAddr) -> Result<TcpListener, BindError> {
    let mut last = None;
    for a in resolve(addr).await? {
        match TcpListener::bind(a).await {
            Ok(listener) => return Ok(listener),
            Err(source) => {
                tracing::debug!(addr = %a, error = %source, "cannot listen on this address");
                last = Some(BindError::Bind { addr: a, source });
            }
        }
    }
    Err(last.unwrap_or_else(|| BindError::Resolve {
        host: addr.host.clone(),
        reason: "no address".into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(host: &str, port: u16) -> BindAddr {
        BindAddr {
            host: host.into(),
            port,
        }
    }

    #[tokio::test]
    async fn literals_are_not_resolved() {
        assert_eq!(
            resolve(&at("127.0.0.2", 80)).await.unwrap(),
            vec!["127.0.0.2:80".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            resolve(&at("[::1]", 81)).await.unwrap(),
            vec!["[::1]:81".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(at("::1", 8).to_string(), "[::1]:8");
        assert_eq!(at("localhost", 8).to_string(), "localhost:8");
    }

    #[tokio::test]
    async fn localhost_resolves_to_loopback_ipv4_first() {
        let addrs = resolve(&at("localhost", 0)).await.unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
        if let Some(first_v6) = addrs.iter().position(SocketAddr::is_ipv6) {
            assert!(addrs[first_v6..].iter().all(SocketAddr::is_ipv6));
        }
        let listener = bind(&at("localhost", 0)).await.unwrap();
        assert!(listener.local_addr().unwrap().ip().is_loopback());
    }

    #[tokio::test]
    async fn unresolvable_names_are_an_error() {
        for bad in ["", "no-such-host.invalid", "bad host name"] {
            match resolve(&at(bad, 0)).await {
                Err(BindError::Resolve { host, .. }) => assert_eq!(host, bad),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
