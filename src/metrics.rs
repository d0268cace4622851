//! The server's metrics, served at `GET /metrics` ([`Metrics::render`]) in the
//! Prometheus text format (or OpenMetrics, when the scraper asks for it).
//!
//! Every label has a bounded set of values, whatever clients send: `tracker` is
//! one of the served trackers (the application passes its name, never the request
//! path), `method` one of the names the application passes as `&'static str` (its
//! method table, else [`OTHER_METHOD`] or [`NO_METHOD`]), `outcome` an [`Outcome`],
//! `limit` a [`Limit`], `reason` a [`ConnRefusal`], `code` an HTTP status the server
//! itself sends. Durations are in seconds, as Prometheus names them.
//!
//! The front end counts connections and HTTP responses; the application counts
//! calls, failed logins, limiter refusals and storage errors.

use std::sync::atomic::AtomicI64;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The prefix of every metric name.
pub const PREFIX: &str = "roundup_xmlrpc";

/// The `method` label of a call refused before its body (and so its method name)
/// was read.
pub const NO_METHOD: &str = "none";

/// The `method` label of a call to a method the server does not have (any name a
/// client makes up counts here).
pub const OTHER_METHOD: &str = "other";

/// Upper bounds of the call-duration histogram's buckets, in seconds (the request
/// deadline is 60 s by default).
pub const DURATION_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The `Content-Type` of the Prometheus text format (version 0.0.4).
pub const PROMETHEUS_CONTENT_TYPE: &str =
    prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The `Content-Type` of the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How a call ended (the `outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Answered with a result.
    Ok,
    /// Answered with an XML-RPC fault (bad arguments, permissions, unknown method...).
    Fault,
    /// The request body is not an XML-RPC call (parse error or invalid request).
    Invalid,
    /// Refused from the request head: failed login, a rate limit, or no `Xmlrpc
    /// Access`.
    Refused,
    /// Past the request deadline before committing: rolled back, answered 503.
    Deadline,
    /// A storage error (the database could not be read or written).
    Error,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 6] = [
        Outcome::Ok,
        Outcome::Fault,
        Outcome::Invalid,
        Outcome::Refused,
        Outcome::Deadline,
        Outcome::Error,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fault => "fault",
            Outcome::Invalid => "invalid",
            Outcome::Refused => "refused",
            Outcome::Deadline => "deadline",
            Outcome::Error => "error",
        }
    }
}

/// Which rate limiter refused a call (the `limit` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// The failed-login limiter (`[web] api_failed_login_limit`).
    Logins,
    /// The call-rate limiter (`[web] api_calls_per_interval`).
    Calls,
}

impl Limit {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Logins => "logins",
            Limit::Calls => "calls",
        }
    }
}

/// Why a connection was refused at accept time (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnRefusal {
    /// The overall cap (`max_connections`).
    MaxConnections,
    /// The per-address cap (`max_connections_per_address`).
    PerAddress,
}

impl ConnRefusal {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnRefusal::MaxConnections => "max_connections",
            ConnRefusal::PerAddress => "max_connections_per_address",
        }
    }
}

macro_rules! label_value {
    ($($t:ty),*) => {$(
        impl EncodeLabelValue for $t {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                EncodeLabelValue::encode(&self.as_str(), encoder)
            }
        }
    )*};
}
label_value!(Outcome, Limit, ConnRefusal);

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CallLabels {
    tracker: String,
    method: &'static str,
    outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TrackerLabels {
    tracker: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LimitLabels {
    tracker: String,
    limit: Limit,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    reason: ConnRefusal,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CodeLabels {
    code: u16,
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The metrics of one server process (see the module docs). Cheap to update from
/// any thread.
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    call_duration: Family<TrackerLabels, Histogram, fn() -> Histogram>,
    calls_in_flight: Gauge,
    failed_logins: Family<TrackerLabels, Counter>,
    limiter_refusals: Family<LimitLabels, Counter>,
    storage_errors: Family<TrackerLabels, Counter>,
    open_connections: Gauge,
    refused_connections: Family<ReasonLabels, Counter>,
    http_responses: Family<CodeLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// All metrics at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix(PREFIX);
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "calls",
            "Calls answered, by tracker, method and outcome",
            calls.clone(),
        );
        let call_duration =
            Family::<TrackerLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                duration_histogram,
            );
        registry.register_with_unit(
            "call_duration",
            "Time from a call's request head to its answer",
            Unit::Seconds,
            call_duration.clone(),
        );
        let calls_in_flight = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "calls_in_flight",
            "Calls being authorized, read or run",
            calls_in_flight.clone(),
        );
        let failed_logins = Family::<TrackerLabels, Counter>::default();
        registry.register(
            "failed_logins",
            "Logins refused for a wrong user name or password",
            failed_logins.clone(),
        );
        let limiter_refusals = Family::<LimitLabels, Counter>::default();
        registry.register(
            "limiter_refusals",
            "Calls refused by a rate limiter (429), by limiter",
            limiter_refusals.clone(),
        );
        let storage_errors = Family::<TrackerLabels, Counter>::default();
        registry.register(
            "storage_errors",
            "Database reads or writes that failed",
            storage_errors.clone(),
        );
        let open_connections = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "open_connections",
            "Client connections open",
            open_connections.clone(),
        );
        let refused_connections = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "refused_connections",
            "Connections refused at accept time (503), by cap",
            refused_connections.clone(),
        );
        let http_responses = Family::<CodeLabels, Counter>::default();
        registry.register(
            "http_responses",
            "HTTP responses sent, by status code",
            http_responses.clone(),
        );
        for reason in [ConnRefusal::MaxConnections, ConnRefusal::PerAddress] {
            let _ = refused_connections.get_or_create(&ReasonLabels { reason });
        }
        Metrics {
            registry,
            calls,
            call_duration,
            calls_in_flight,
            failed_logins,
            limiter_refusals,
            storage_errors,
            open_connections,
            refused_connections,
            http_responses,
        }
    }

    /// Makes the per-tracker counters of `tracker` exist at 0, so that they are
    /// scraped before anything happened to them.
    pub fn add_tracker(&self, tracker: &str) {
        let t = || TrackerLabels {
            tracker: tracker.to_string(),
        };
        let _ = self.failed_logins.get_or_create(&t());
        let _ = self.storage_errors.get_or_create(&t());
        let _ = self.call_duration.get_or_create(&t());
        for limit in [Limit::Logins, Limit::Calls] {
            let _ = self.limiter_refusals.get_or_create(&LimitLabels {
                tracker: tracker.to_string(),
                limit,
            });
        }
    }

    /// Counts a call of `tracker` that took `elapsed` (from its request head to its
    /// answer).
    pub fn call(&self, tracker: &str, method: &'static str, outcome: Outcome, elapsed: Duration) {
        self.calls
            .get_or_create(&CallLabels {
                tracker: tracker.to_string(),
                method,
                outcome,
            })
            .inc();
        self.call_duration
            .get_or_create(&TrackerLabels {
                tracker: tracker.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a call in flight until the returned guard is dropped.
    pub fn call_in_flight(&self) -> InFlight {
        self.calls_in_flight.inc();
        InFlight(self.calls_in_flight.clone())
    }

    /// Counts a failed login.
    pub fn failed_login(&self, tracker: &str) {
        self.failed_logins
            .get_or_create(&TrackerLabels {
                tracker: tracker.to_string(),
            })
            .inc();
    }

    /// Counts a call refused by a rate limiter.
    pub fn limiter_refusal(&self, tracker: &str, limit: Limit) {
        self.limiter_refusals
            .get_or_create(&LimitLabels {
                tracker: tracker.to_string(),
                limit,
            })
            .inc();
    }

    /// Counts `n` storage errors.
    pub fn storage_errors(&self, tracker: &str, n: u64) {
        if n > 0 {
            self.storage_errors
                .get_or_create(&TrackerLabels {
                    tracker: tracker.to_string(),
                })
                .inc_by(n);
        }
    }

    /// Counts an open connection until the returned guard is dropped.
    pub fn connection_opened(&self) -> InFlight {
        self.open_connections.inc();
        InFlight(self.open_connections.clone())
    }

    /// Counts a connection refused at accept time.
    pub fn connection_refused(&self, reason: ConnRefusal) {
        self.refused_connections
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Counts an HTTP response.
    pub fn http_response(&self, code: u16) {
        self.http_responses
            .get_or_create(&CodeLabels { code })
            .inc();
    }

    /// The metrics as text, and its `Content-Type`: OpenMetrics when `openmetrics`,
    /// else the Prometheus text format.
    pub fn render(&self, openmetrics: bool) -> (String, &'static str) {
        let mut out = String::with_capacity(8192);
        let result = if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &self.registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        };
        // Writing to a String cannot fail.
        debug_assert!(result.is_ok());
        let content_type = if openmetrics {
            OPENMETRICS_CONTENT_TYPE
        } else {
            PROMETHEUS_CONTENT_TYPE
        };
        (out, content_type)
    }
}

/// Keeps a gauge one higher while it lives.
#[derive(Debug)]
pub struct InFlight(Gauge<i64, AtomicI64>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// True when an `Accept` header value asks for OpenMetrics rather than the
/// Prometheus text format.
pub fn wants_openmetrics(accept: &str) -> bool {
    accept
        .split(',')
        .any(|part| part.trim().starts_with("application/openmetrics-text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, line_start: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(line_start))
            .and_then(|v| v.trim().parse().ok())
    }

    #[test]
    fn calls_are_counted_by_tracker_method_and_outcome() {
        let m = Metrics::new();
        m.add_tracker("demo");
        m.call("demo", "display", Outcome::Ok, Duration::from_millis(3));
        m.call("demo", "display", Outcome::Ok, Duration::from_millis(30));
        m.call(
            "demo",
            NO_METHOD,
            Outcome::Refused,
            Duration::from_millis(1),
        );
        let (text, ct) = m.render(false);
        assert_eq!(ct, PROMETHEUS_CONTENT_TYPE);
        assert_eq!(
            sample(
                &text,
                "roundup_xmlrpc_calls_total{tracker=\"demo\",method=\"display\",outcome=\"ok\"}"
            ),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                "roundup_xmlrpc_calls_total{tracker=\"demo\",method=\"none\",outcome=\"refused\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "roundup_xmlrpc_call_duration_seconds_bucket{le=\"0.005\",tracker=\"demo\"}"
            )
            .or_else(|| sample(
                &text,
                "roundup_xmlrpc_call_duration_seconds_bucket{tracker=\"demo\",le=\"0.005\"}"
            )),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                "roundup_xmlrpc_call_duration_seconds_count{tracker=\"demo\"}"
            ),
            Some(3.0)
        );
        assert_eq!(
            sample(
                &text,
                "roundup_xmlrpc_failed_logins_total{tracker=\"demo\"}"
            ),
            Some(0.0),
            "a served tracker's counters exist from the start"
        );
    }

    #[test]
    fn guards_move_the_gauges_back() {
        let m = Metrics::new();
        let a = m.call_in_flight();
        let b = m.connection_opened();
        let (text, _) = m.render(false);
        assert_eq!(sample(&text, "roundup_xmlrpc_calls_in_flight "), Some(1.0));
        assert_eq!(sample(&text, "roundup_xmlrpc_open_connections "), Some(1.0));
        drop((a, b));
        let (text, _) = m.render(false);
        assert_eq!(sample(&text, "roundup_xmlrpc_calls_in_flight "), Some(0.0));
        assert_eq!(sample(&text, "roundup_xmlrpc_open_connections "), Some(0.0));
    }

    #[test]
    fn label_values_are_escaped_and_openmetrics_ends_with_eof() {
        let m = Metrics::new();
        m.failed_login("a\"b\\c\nd");
        let (text, ct) = m.render(true);
        assert_eq!(ct, OPENMETRICS_CONTENT_TYPE);
        assert!(
            text.contains("roundup_xmlrpc_failed_logins_total{tracker=\"a\\\"b\\\\c\\nd\"} 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
        assert!(text.lines().all(|l| !l.is_empty()));
    }

    #[test]
    fn accept_negotiation() {
        assert!(wants_openmetrics(
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
        ));
        assert!(!wants_openmetrics("text/plain;version=0.0.4"));
        assert!(!wants_openmetrics("*/*"));
    }
}
