//! HTTP refusals: every request the front end (or the application, from the head)
//! answers with an error status instead of a call's answer, and the one mapping
//! from each to its status, headers and body.

use std::io;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{
    HeaderMap, HeaderValue, ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, SERVER,
};
use hyper::{Response, StatusCode};

use super::handler::RpcResponse;
use super::service::SERVER_NAME;

/// Why a request got an error response from the HTTP layer instead of the handler's.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The path is not served by the handler (404).
    #[error("no such path")]
    NotFound,
    /// The method is not allowed on this path (405 with the given `Allow` header).
    #[error("method not allowed")]
    MethodNotAllowed {
        /// The value of the `Allow` header.
        allow: &'static str,
    },
    /// A POST with neither `Content-Length` nor `Transfer-Encoding: chunked` (411).
    #[error("POST without Content-Length")]
    LengthRequired,
    /// The body does not fit in what is left of the global body budget
    /// ([`super::ServerConfig::max_body_bytes_in_flight`]) (503).
    #[error("body budget exhausted")]
    Busy,
    /// `Content-Encoding` other than `gzip`/`x-gzip`/`identity`, or stacked codings (415).
    #[error("unsupported Content-Encoding")]
    UnsupportedEncoding,
    /// The body (as declared or as sent) exceeds [`super::ServerConfig::max_body_bytes`] (413).
    #[error("request body larger than {limit} bytes")]
    BodyTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The gunzipped body exceeds [`super::ServerConfig::max_decoded_body_bytes`] (413).
    #[error("decoded request body larger than {limit} bytes")]
    DecodedTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The gzip body does not decompress (400).
    #[error("corrupt gzip request body: {0}")]
    CorruptGzip(#[source] io::Error),
    /// The body did not arrive within [`super::ServerConfig::body_read_timeout`] (408).
    #[error("timed out reading the request body")]
    BodyTimeout,
    /// The body could not be read (client went away, framing error) (400).
    #[error("reading the request body failed: {0}")]
    BodyRead(#[source] hyper::Error),
    /// No handler slot within [`super::ServerConfig::request_deadline`], or the call passed
    /// it before committing anything (503).
    #[error("request deadline exceeded")]
    Deadline,
    /// The handler panicked (500).
    #[error("handler panicked: {0}")]
    HandlerPanicked(String),
    /// The blocking task was cancelled, e.g. by runtime shutdown (500).
    #[error("handler task failed: {0}")]
    HandlerFailed(#[source] tokio::task::JoinError),
}

impl RequestError {
    /// The refusal this error is answered with.
    pub fn refusal(&self) -> Refusal {
        match self {
            Self::NotFound => Refusal::NotFound,
            Self::MethodNotAllowed { allow } => Refusal::MethodNotAllowed { allow },
            Self::LengthRequired => Refusal::LengthRequired,
            Self::Busy => Refusal::Busy,
            Self::UnsupportedEncoding => Refusal::UnsupportedEncoding,
            Self::BodyTooLarge { .. } => Refusal::BodyTooLarge,
            Self::DecodedTooLarge { .. } => Refusal::DecodedTooLarge,
            Self::CorruptGzip(_) => Refusal::CorruptGzip,
            Self::BodyTimeout => Refusal::BodyTimeout,
            Self::BodyRead(_) => Refusal::BodyRead,
            Self::Deadline => Refusal::Deadline,
            Self::HandlerPanicked(_) | Self::HandlerFailed(_) => Refusal::Internal,
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        self.refusal().status()
    }

    /// The response for this error: [`Refusal::response`] with the standard headers
    /// first.
    pub(crate) fn into_response(self) -> Response<Full<Bytes>> {
        self.refusal().http_response()
    }
}

/// A response with the standard headers (Content-Type, Content-Length, Server).
pub(crate) fn text_response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let body = body.into();
    let length = body.len();
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(SERVER, HeaderValue::from_static(SERVER_NAME));
    response
}

/// A complete `503` response with `Retry-After: 1` and `Connection: close`, whose
/// body `$body` is `$len` bytes long.
macro_rules! canned_503 {
    ($len:literal, $body:literal) => {
        concat!(
            "HTTP/1.1 503 Service Unavailable\r\n",
            "Server: roundup-xmlrpc-server\r\n",
            "Content-Type: text/plain; charset=utf-8\r\n",
            "Content-Length: ",
            $len,
            "\r\nRetry-After: 1\r\n",
            "Connection: close\r\n",
            "\r\n",
            $body
        )
        .as_bytes()
    };
}

/// The canned answer the accept loop writes (best effort, without reading the
/// request, before hyper sees the connection) to a
/// connection accepted above [`super::ServerConfig::max_connections`], just before closing it.
pub(crate) const OVER_CAPACITY_RESPONSE: &[u8] = canned_503!(21, "too many connections\n");

/// The canned answer to a connection from an address that already has
/// [`super::ServerConfig::max_connections_per_address`] connections open.
pub(crate) const OVER_ADDRESS_CAP_RESPONSE: &[u8] =
    canned_503!(39, "too many connections from this address\n");

/// The content type of the plain-text refusals.
pub const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// Which limit a `429 Too Many Requests` is about (it decides the text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimit {
    /// Failed logins (`Logins occurring too fast`).
    Logins,
    /// Calls per interval (`Api rate limits exceeded`).
    Calls,
}

/// A refusal by a rate limiter: when to come back and what the limit is.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimited {
    /// Which limit.
    pub which: RateLimit,
    /// Seconds until a new attempt may pass (`Retry-After`).
    pub retry_after_secs: u64,
    /// Seconds until the limiter is back to full (`X-RateLimit-Reset`).
    pub reset_secs: f64,
    /// Attempts allowed per period (`X-RateLimit-Limit`).
    pub limit: u32,
    /// The period in seconds (`X-RateLimit-Limit-Period`).
    pub period_secs: u64,
}

/// Every HTTP refusal: the front end's, and the application's from a request's head
/// (the variants marked "application"). [`Refusal::response`] is the one place where
/// each becomes a status, headers and a body.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// 404: the path is not served.
    NotFound,
    /// 404 (application): no tracker answers at this path.
    NoTracker,
    /// 405, with the `Allow` header.
    MethodNotAllowed {
        /// The value of the `Allow` header.
        allow: &'static str,
    },
    /// 411: a POST with neither `Content-Length` nor chunked framing.
    LengthRequired,
    /// 400 (application): a malformed `Authorization` header.
    BadAuthorization,
    /// 403 (application): the login failed. Python's `http.server` error page, as
    /// Roundup's standalone server sends it (`send_error(403, "<path> (Invalid
    /// user)")`), and the connection is closed.
    InvalidUser {
        /// The request path, quoted (escaped) in the page.
        path: String,
    },
    /// 429 (application): a rate limit, with `Retry-After` and the `X-RateLimit-*`
    /// headers Roundup's REST interface sends.
    TooManyRequests(RateLimited),
    /// 503 with `Retry-After`: the body budget is spent.
    Busy,
    /// 415: an unknown `Content-Encoding`.
    UnsupportedEncoding,
    /// 413: the body is larger than the limit.
    BodyTooLarge,
    /// 413: the gunzipped body is larger than the limit.
    DecodedTooLarge,
    /// 400: the gzip body does not decompress.
    CorruptGzip,
    /// 408: the body did not arrive in time.
    BodyTimeout,
    /// 400: the body could not be read.
    BodyRead,
    /// 503 with `Retry-After`: no handler slot within the deadline, or the call passed
    /// it before committing (rolled back).
    Deadline,
    /// 500: the handler failed.
    Internal,
    /// 403: `/metrics` asked by a client outside `--metrics-allow`.
    MetricsForbidden,
    /// 503: `/health` found the application unable to serve (the reason is the
    /// handler's, free of file paths).
    Unhealthy {
        /// Why, e.g. `tracker demo cannot read its database`.
        reason: String,
    },
}

impl Refusal {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound | Self::NoTracker => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::LengthRequired => StatusCode::LENGTH_REQUIRED,
            Self::BadAuthorization | Self::CorruptGzip | Self::BodyRead => StatusCode::BAD_REQUEST,
            Self::InvalidUser { .. } | Self::MetricsForbidden => StatusCode::FORBIDDEN,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Busy | Self::Deadline | Self::Unhealthy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::UnsupportedEncoding => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyTooLarge | Self::DecodedTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The response: status, the refusal's own headers, content type and body (no
    /// internal details). The framing headers are added when it is sent.
    pub fn response(&self) -> RpcResponse {
        let mut headers = HeaderMap::new();
        let (content_type, body) = match self {
            Self::InvalidUser { path } => {
                headers.insert(CONNECTION, HeaderValue::from_static("close"));
                ("text/html;charset=utf-8", invalid_user_page(path))
            }
            Self::TooManyRequests(limited) => {
                let text = match limited.which {
                    RateLimit::Logins => "Logins occurring too fast",
                    RateLimit::Calls => "Api rate limits exceeded",
                };
                rate_limit_headers(&mut headers, limited);
                (
                    TEXT_PLAIN,
                    format!(
                        "{text}. Please wait: {} seconds.\n",
                        limited.retry_after_secs
                    ),
                )
            }
            Self::Unhealthy { reason } => (TEXT_PLAIN, format!("unavailable: {reason}\n")),
            other => {
                match other {
                    Self::MethodNotAllowed { allow } => {
                        headers.insert(ALLOW, HeaderValue::from_static(allow));
                    }
                    Self::Busy | Self::Deadline => {
                        headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
                    }
                    _ => {}
                }
                (TEXT_PLAIN, other.message().to_string())
            }
        };
        RpcResponse {
            status: self.status(),
            headers,
            content_type,
            body: body.into_bytes(),
        }
    }

    /// The whole HTTP response: [`Refusal::response`] with the standard headers.
    pub(crate) fn http_response(&self) -> Response<Full<Bytes>> {
        let RpcResponse {
            status,
            headers,
            content_type,
            body,
        } = self.response();
        let mut response = text_response(status, content_type, body);
        response.headers_mut().extend(headers);
        response
    }

    /// The text/plain body of the refusals that have one.
    fn message(&self) -> &'static str {
        match self {
            Self::NotFound => "not found\n",
            Self::NoTracker => "no tracker at this path\n",
            Self::MethodNotAllowed { .. } => "method not allowed\n",
            Self::LengthRequired => "Content-Length required\n",
            Self::BadAuthorization => "malformed Authorization header\n",
            Self::Busy => "server busy: too many request bodies in flight\n",
            Self::UnsupportedEncoding => "unsupported content encoding\n",
            Self::BodyTooLarge => "request body too large\n",
            Self::DecodedTooLarge => "decoded request body too large\n",
            Self::CorruptGzip => "corrupt gzip request body\n",
            Self::BodyTimeout => "timed out reading the request body\n",
            Self::BodyRead => "could not read the request body\n",
            Self::Deadline => "request deadline exceeded\n",
            Self::Internal => "internal server error\n",
            Self::MetricsForbidden => "forbidden: /metrics is served to --metrics-allow only\n",
            Self::InvalidUser { .. } | Self::TooManyRequests(_) | Self::Unhealthy { .. } => "",
        }
    }
}

/// `Retry-After` and the `X-RateLimit-*` headers of a 429.
fn rate_limit_headers(headers: &mut HeaderMap, r: &RateLimited) {
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    put(RETRY_AFTER.as_str(), r.retry_after_secs.to_string());
    put("x-ratelimit-limit", r.limit.to_string());
    put("x-ratelimit-limit-period", r.period_secs.to_string());
    put("x-ratelimit-remaining", "0".into());
    put("x-ratelimit-reset", format!("{:.6}", r.reset_secs));
}

/// The 403 error page of Python's `http.server` (`BaseHTTPRequestHandler.send_error`)
/// with `<path> (Invalid user)` as the message.
fn invalid_user_page(path: &str) -> String {
    let esc = path
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<!DOCTYPE HTML>\n<html lang=\"en\">\n    <head>\n        <meta charset=\"utf-8\">\n        <title>Error response</title>\n    </head>\n    <body>\n        <h1>Error response</h1>\n        <p>Error code: 403</p>\n        <p>Message: {esc} (Invalid user).</p>\n        <p>Error code explanation: 403 - Request forbidden -- authorization will not help.</p>\n    </body>\n</html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_responses_are_well_framed() {
        for response in [OVER_CAPACITY_RESPONSE, OVER_ADDRESS_CAP_RESPONSE] {
            let text = std::str::from_utf8(response).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
            assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())));
        }
    }
}
