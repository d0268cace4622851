//! The process-wide settings of `serve`: the front end's [`ServerConfig`], the
//! address to listen on and the log format, from the command-line flags merged with the
//! `[xmlrpc_server]` options of the served trackers ([`server_config`], the one
//! place where flags and config.ini meet). The trackers' settings were read when
//! they were opened; nothing here reads a file.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::cli::{ForwardedHeaderArg, LogFormatArg, ServeArgs};
use crate::log::Format as LogFormat;
use crate::server::config::default_metrics_allow;
use crate::server::{parse_net, BindAddr, ForwardedHeader, IpNet, IpNetError, ServerConfig};

use super::Settings;

/// Where `serve` listens when neither the command line nor config.ini says.
pub const DEFAULT_BIND: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The port `serve` listens on when neither the command line nor config.ini says.
pub const DEFAULT_PORT: u16 = 8000;

/// A flag that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    /// `--trusted-proxy` is not an address or network.
    #[error("--trusted-proxy {arg}: {error}")]
    TrustedProxy {
        /// The flag's value.
        arg: String,
        /// Why it is not a network.
        error: IpNetError,
    },
    /// `--metrics-allow` is not an address or network.
    #[error("--metrics-allow {arg}: {error}")]
    MetricsAllow {
        /// The flag's value.
        arg: String,
        /// Why it is not a network.
        error: IpNetError,
    },
}

/// The log format: `--log-format`, else the first tracker's `[xmlrpc_server]
/// log_format`, else text.
pub fn log_format(flags: &ServeArgs, trackers: &[&Settings]) -> LogFormat {
    match flags.log_format {
        Some(LogFormatArg::Text) => LogFormat::Text,
        Some(LogFormatArg::Json) => LogFormat::Json,
        None => trackers
            .first()
            .and_then(|t| t.server.log_format)
            .unwrap_or_default(),
    }
}

/// The front end's settings and the listen address for serving `trackers` with
/// `flags`: a flag wins over config.ini; of the trackers' process-wide options the
/// strictest wins (one process serves them all): the smallest `max_connections`,
/// `max_request_bytes`, `request_timeout_sec`, `max_connections_per_address` (0, no
/// cap, counting as the largest), `max_body_bytes_in_flight` and
/// `request_deadline_sec`; `trusted_proxies` of every tracker unless
/// `--trusted-proxy` is given, `metrics_allow` likewise (else loopback); `bind` of
/// the first tracker. The largest accepted body is lowered to the body budget when
/// above it.
pub fn server_config(
    flags: &ServeArgs,
    trackers: &[&Settings],
) -> Result<(ServerConfig, BindAddr), FlagError> {
    let mut config = ServerConfig {
        trusted_proxies: trusted_proxies(flags, trackers)?,
        metrics_allow: metrics_allow(flags, trackers)?,
        forwarded_header: match flags.forwarded_header {
            ForwardedHeaderArg::XForwardedFor => ForwardedHeader::XForwardedFor,
            ForwardedHeaderArg::Forwarded => ForwardedHeader::Forwarded,
        },
        ..ServerConfig::default()
    };
    let mut per_address: Option<usize> = None;
    let mut budget: Option<usize> = None;
    let mut deadline: Option<Duration> = None;
    for server in trackers.iter().map(|t| &t.server) {
        if let Some(n) = server.max_connections {
            config.max_connections = config.max_connections.min(n);
        }
        if let Some(n) = server.max_request_bytes {
            config.max_body_bytes = config.max_body_bytes.min(n);
            config.max_decoded_body_bytes = config.max_decoded_body_bytes.min(n);
        }
        if let Some(secs) = server.request_timeout_sec {
            let t = Duration::from_secs(secs);
            config.header_read_timeout = config.header_read_timeout.min(t);
            config.body_read_timeout = config.body_read_timeout.min(t);
        }
        if let Some(n) = server.max_connections_per_address {
            per_address = Some(match (per_address, n) {
                (None, n) | (Some(0), n) => n,
                (Some(m), 0) => m,
                (Some(m), n) => m.min(n),
            });
        }
        if let Some(n) = server.max_body_bytes_in_flight {
            budget = Some(budget.map_or(n, |b| b.min(n)));
        }
        if let Some(secs) = server.request_deadline_sec {
            let t = Duration::from_secs(secs);
            deadline = Some(deadline.map_or(t, |d| d.min(t)));
        }
    }
    if let Some(n) = flags.max_connections_per_address.or(per_address) {
        config.max_connections_per_address = n;
    }
    let flag_budget = flags
        .max_body_bytes_in_flight
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    if let Some(n) = flag_budget.or(budget) {
        config.max_body_bytes_in_flight = n;
    }
    if let Some(t) = deadline {
        config.request_deadline = t;
    }
    fit_body_limit_to_budget(&mut config);
    let bind = trackers.first().and_then(|t| t.server.bind);
    let addr = BindAddr {
        host: flags
            .bind
            .clone()
            .or(bind.map(|b| b.ip().to_string()))
            .unwrap_or_else(|| DEFAULT_BIND.to_string()),
        port: flags
            .port
            .or(bind.map(|b| b.port()))
            .unwrap_or(DEFAULT_PORT),
    };
    Ok((config, addr))
}

/// Who may read `/metrics`: `--metrics-allow` if given, else the `[xmlrpc_server]
/// metrics_allow` of every served tracker, else loopback.
fn metrics_allow(flags: &ServeArgs, trackers: &[&Settings]) -> Result<Vec<IpNet>, FlagError> {
    let mut nets: Vec<IpNet> = Vec::new();
    if flags.metrics_allow.is_empty() {
        for net in trackers.iter().flat_map(|t| &t.server.metrics_allow) {
            if !nets.contains(net) {
                nets.push(*net);
            }
        }
    } else {
        for p in &flags.metrics_allow {
            let net = parse_net(p).map_err(|error| FlagError::MetricsAllow {
                arg: p.clone(),
                error,
            })?;
            if !nets.contains(&net) {
                nets.push(net);
            }
        }
    }
    if nets.is_empty() {
        nets = default_metrics_allow();
    }
    Ok(nets)
}

/// A body larger than the body budget could never be read: lower the body limits to
/// the budget (413 above it, instead of 503 forever).
fn fit_body_limit_to_budget(config: &mut ServerConfig) {
    let budget = config.max_body_bytes_in_flight;
    if config.max_body_bytes > budget || config.max_decoded_body_bytes > budget {
        tracing::warn!(
            max_body_bytes_in_flight = budget,
            max_request_bytes = config.max_body_bytes,
            "the largest accepted request body is lowered to the body budget"
        );
        config.max_body_bytes = config.max_body_bytes.min(budget);
        config.max_decoded_body_bytes = config.max_decoded_body_bytes.min(budget);
    }
}

/// The proxies whose forwarding header is believed: `--trusted-proxy` if given,
/// else the `[xmlrpc_server] trusted_proxies` of every served tracker.
fn trusted_proxies(flags: &ServeArgs, trackers: &[&Settings]) -> Result<Vec<IpNet>, FlagError> {
    let mut nets: Vec<IpNet> = Vec::new();
    let mut add = |net: IpNet| {
        if !nets.contains(&net) {
            nets.push(net);
        }
    };
    if flags.trusted_proxies.is_empty() {
        for net in trackers.iter().flat_map(|t| &t.server.trusted_proxies) {
            add(*net);
        }
    } else {
        for p in &flags.trusted_proxies {
            let net = parse_net(p).map_err(|error| FlagError::TrustedProxy {
                arg: p.clone(),
                error,
            })?;
            add(net);
        }
    }
    if !nets.is_empty() {
        let list: Vec<String> = nets.iter().map(ToString::to_string).collect();
        tracing::info!(proxies = %list.join(", "), "trusting forwarding headers of these proxies");
    }
    Ok(nets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;
    use std::path::Path;

    fn flags(args: &[&str]) -> ServeArgs {
        let mut argv = vec!["roundup-xmlrpc-server"];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["-i", "t"]);
        Cli::try_parse_from(argv).expect("valid flags").serve
    }

    fn settings(ini: &str) -> Settings {
        super::super::parse_config(ini, Path::new("/t"), "config.ini").expect("valid config")
    }

    #[test]
    fn defaults_without_flags_or_options() {
        let (config, addr) = server_config(&flags(&[]), &[&settings("")]).unwrap();
        assert_eq!(addr, BindAddr::ip(DEFAULT_BIND, DEFAULT_PORT));
        assert_eq!(config.metrics_allow, default_metrics_allow());
        assert_eq!(log_format(&flags(&[]), &[&settings("")]), LogFormat::Text);
        let d = ServerConfig::default();
        assert_eq!(config.max_connections, d.max_connections);
        assert_eq!(config.max_body_bytes, d.max_body_bytes);
        assert!(config.trusted_proxies.is_empty());
    }

    #[test]
    fn the_strictest_tracker_wins_and_flags_win_over_both() {
        let a = settings(
            "[xmlrpc_server]\nbind = 127.0.0.2:9000\nmax_connections = 50\n\
             max_connections_per_address = 0\nmax_body_bytes_in_flight = 2000000\n\
             request_deadline_sec = 9\ntrusted_proxies = 10.0.0.0/8\n",
        );
        let b = settings(
            "[xmlrpc_server]\nbind = 127.0.0.3:9001\nmax_connections = 70\n\
             max_connections_per_address = 5\nmax_request_bytes = 1000\n\
             request_timeout_sec = 3\nrequest_deadline_sec = 4\ntrusted_proxies = ::1\n",
        );
        let (config, addr) = server_config(&flags(&[]), &[&a, &b]).unwrap();
        assert_eq!(
            addr,
            BindAddr::ip("127.0.0.2".parse().unwrap(), 9000),
            "the first tracker's bind"
        );
        assert_eq!(config.max_connections, 50);
        assert_eq!(
            config.max_connections_per_address, 5,
            "0 (no cap) is the largest"
        );
        assert_eq!(config.max_body_bytes_in_flight, 2_000_000);
        assert_eq!(
            (config.max_body_bytes, config.max_decoded_body_bytes),
            (1000, 1000)
        );
        assert_eq!(config.header_read_timeout, Duration::from_secs(3));
        assert_eq!(config.request_deadline, Duration::from_secs(4));
        assert_eq!(
            config.trusted_proxies,
            vec![parse_net("10.0.0.0/8").unwrap(), parse_net("::1").unwrap()]
        );

        let f = flags(&[
            "--port",
            "7000",
            "--max-connections-per-address",
            "9",
            "--max-body-bytes-in-flight",
            "500",
            "--trusted-proxy",
            "192.0.2.1",
            "--forwarded-header",
            "forwarded",
        ]);
        let (config, addr) = server_config(&f, &[&a, &b]).unwrap();
        assert_eq!(addr, BindAddr::ip("127.0.0.2".parse().unwrap(), 7000));
        assert_eq!(config.max_connections_per_address, 9);
        assert_eq!(config.max_body_bytes_in_flight, 500);
        assert_eq!(
            (config.max_body_bytes, config.max_decoded_body_bytes),
            (500, 500),
            "the body limit is lowered to the budget"
        );
        assert_eq!(
            config.trusted_proxies,
            vec![parse_net("192.0.2.1").unwrap()]
        );
        assert_eq!(config.forwarded_header, ForwardedHeader::Forwarded);
    }

    #[test]
    fn metrics_allow_log_format_and_bind_names() {
        let a = settings("[xmlrpc_server]\nmetrics_allow = 10.0.0.0/8\nlog_format = json\n");
        let b = settings("[xmlrpc_server]\nmetrics_allow = ::1, 10.0.0.0/8\nlog_format = text\n");
        let (config, _) = server_config(&flags(&[]), &[&a, &b]).unwrap();
        assert_eq!(
            config.metrics_allow,
            vec![parse_net("10.0.0.0/8").unwrap(), parse_net("::1").unwrap()]
        );
        assert_eq!(log_format(&flags(&[]), &[&a, &b]), LogFormat::Json);
        assert_eq!(log_format(&flags(&[]), &[&b, &a]), LogFormat::Text);
        let f = flags(&[
            "--metrics-allow",
            "192.0.2.0/24",
            "--log-format",
            "text",
            "--bind",
            "localhost",
        ]);
        let (config, addr) = server_config(&f, &[&a]).unwrap();
        assert_eq!(
            config.metrics_allow,
            vec![parse_net("192.0.2.0/24").unwrap()]
        );
        assert_eq!(log_format(&f, &[&a]), LogFormat::Text);
        assert_eq!(
            addr,
            BindAddr {
                host: "localhost".into(),
                port: DEFAULT_PORT
            }
        );
        let e = server_config(&flags(&["--metrics-allow", "nope"]), &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--metrics-allow nope: invalid IP address \"nope\""
        );
    }

    #[test]
    fn a_bad_trusted_proxy_flag_is_named() {
        let e = server_config(&flags(&["--trusted-proxy", "10.0.0.0/99"]), &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--trusted-proxy 10.0.0.0/99: invalid prefix length \"99\""
        );
    }
}
