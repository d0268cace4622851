//! Request and response bodies: `Content-Encoding` and `Accept-Encoding`, gunzip
//! within the size limit and the body budget, gzip, and reading a body (the part
//! that came with the head, then the rest) with its bytes reserved from the budget.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::Poll;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use hyper::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, TRANSFER_ENCODING};

use super::budget::Reservation;
use super::refusal::RequestError;

/// True when the request says how long its body is: a `Content-Length` or a
/// `Transfer-Encoding` (hyper accepts only chunked as the last coding, and answers
/// 400 to the rest before we see them).
pub(crate) fn has_framing(headers: &hyper::HeaderMap) -> bool {
    headers.contains_key(CONTENT_LENGTH) || headers.contains_key(TRANSFER_ENCODING)
}

/// The coding of a request body, from its `Content-Encoding` header(s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestCoding {
    /// No coding.
    Identity,
    /// `gzip` or `x-gzip`.
    Gzip,
}

pub(crate) fn request_coding(headers: &hyper::HeaderMap) -> Result<RequestCoding, RequestError> {
    let mut codings = Vec::new();
    for value in headers.get_all(CONTENT_ENCODING) {
        let value = value
            .to_str()
            .map_err(|_| RequestError::UnsupportedEncoding)?;
        codings.extend(
            value
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity")),
        );
    }
    match codings.as_slice() {
        [] => Ok(RequestCoding::Identity),
        [c] if c.eq_ignore_ascii_case("gzip") || c.eq_ignore_ascii_case("x-gzip") => {
            Ok(RequestCoding::Gzip)
        }
        _ => Err(RequestError::UnsupportedEncoding),
    }
}

/// True when `Accept-Encoding` lets us answer with gzip (`gzip`, `x-gzip` or `*` with a
/// non-zero q-value; an explicit `gzip` entry overrides `*`).
pub fn accepts_gzip(headers: &hyper::HeaderMap) -> bool {
    let mut gzip_q: Option<f32> = None;
    let mut any_q: Option<f32> = None;
    for value in headers.get_all(ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut params = item.split(';');
            let coding = params.next().unwrap_or("").trim();
            let mut q = 1.0f32;
            for param in params {
                if let Some((key, val)) = param.split_once('=') {
                    if key.trim().eq_ignore_ascii_case("q") {
                        q = val.trim().parse().unwrap_or(0.0);
                    }
                }
            }
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                gzip_q = Some(q);
            } else if coding == "*" {
                any_q = Some(q);
            }
        }
    }
    gzip_q.or(any_q).is_some_and(|q| q > 0.0)
}

/// Size of the first output buffer of [`gunzip_limited`] (it then doubles).
const GUNZIP_FIRST_BUFFER: usize = 64 << 10;

/// Gunzips `data` (one or more gzip members), failing as soon as the output would
/// exceed `limit` bytes. The output buffer is reserved from `reservation` before it
/// grows ([`RequestError::Busy`] when the budget is spent). An empty body stays empty.
pub fn gunzip_limited(
    data: &[u8],
    limit: usize,
    reservation: &mut Reservation,
) -> Result<Vec<u8>, RequestError> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    let mut decoder = flate2::read::MultiGzDecoder::new(data);
    let mut out: Vec<u8> = Vec::new();
    let mut filled = 0;
    loop {
        if filled == out.len() {
            // One byte past the limit tells "exactly the limit" from "more".
            let cap = limit.saturating_add(1);
            if filled >= cap {
                return Err(RequestError::DecodedTooLarge { limit });
            }
            let target = out
                .len()
                .saturating_mul(2)
                .max(GUNZIP_FIRST_BUFFER)
                .min(cap);
            if !reservation.try_grow(target - out.len()) {
                return Err(RequestError::Busy);
            }
            out.reserve_exact(target - out.len());
            out.resize(target, 0);
        }
        let n = decoder
            .read(&mut out[filled..])
            .map_err(RequestError::CorruptGzip)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    if filled > limit {
        return Err(RequestError::DecodedTooLarge { limit });
    }
    out.truncate(filled);
    Ok(out)
}

/// Gzips a response body (fast level, like Python's `xmlrpc.server`).
pub fn gzip_encode(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    encoder.write_all(data)?;
    encoder.finish()
}

/// Bodies up to this size (by `Content-Length`) that have fully arrived with the
/// head are taken along with it: the call is then authorized and run in one trip to a
/// blocking thread. Their bytes come from the body budget like any other body's.
pub const EARLY_BODY_MAX: usize = 64 << 10;

/// Moves the body frames that have already arrived into `buf` (hyper hands them over
/// after one scheduling round), without waiting for the client; true when that was
/// the whole body.
pub(crate) async fn take_arrived(
    body: &mut Incoming,
    buf: &mut Vec<u8>,
) -> Result<bool, RequestError> {
    let mut yielded = false;
    std::future::poll_fn(|cx| loop {
        if body.is_end_stream() {
            return Poll::Ready(Ok(true));
        }
        match Pin::new(&mut *body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
            Poll::Ready(Some(Err(err))) => return Poll::Ready(Err(RequestError::BodyRead(err))),
            Poll::Ready(None) => return Poll::Ready(Ok(true)),
            Poll::Pending if !yielded => {
                // Let the connection task move what it has read into the body.
                yielded = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Pending => return Poll::Ready(Ok(false)),
        }
    })
    .await
}

/// Reads the rest of a body (after the `buf` already read) of at most `limit` bytes,
/// its buffer reserved from `reservation` before it grows ([`RequestError::Busy`] when
/// the budget is spent; a body with a `Content-Length` has its whole length reserved
/// already).
pub(crate) async fn read_body(
    mut body: Incoming,
    limit: usize,
    reservation: &mut Reservation,
    mut buf: Vec<u8>,
) -> Result<Bytes, RequestError> {
    let declared = usize::try_from(body.size_hint().lower()).unwrap_or(limit);
    let room = declared
        .saturating_add(buf.len())
        .min(limit)
        .min(reservation.bytes());
    buf.reserve_exact(room.saturating_sub(buf.len()));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(RequestError::BodyRead)?;
        if let Ok(data) = frame.into_data() {
            let needed = buf.len().saturating_add(data.len());
            if needed > limit {
                return Err(RequestError::BodyTooLarge { limit });
            }
            if needed > buf.capacity() {
                let target = needed.max(buf.capacity().saturating_mul(2)).min(limit);
                let more = target.saturating_sub(reservation.bytes());
                if more > 0 && !reservation.try_grow(more) {
                    return Err(RequestError::Busy);
                }
                buf.reserve_exact(target - buf.len());
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::super::budget::ByteBudget;
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(name: &'static str, values: &[&'static str]) -> hyper::HeaderMap {
        let mut map = hyper::HeaderMap::new();
        for v in values {
            map.append(name, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn accept_encoding_parsing() {
        let ae = |v: &[&'static str]| accepts_gzip(&headers("accept-encoding", v));
        assert!(ae(&["gzip"]));
        assert!(ae(&["GZip"]));
        assert!(ae(&["deflate, gzip;q=0.5"]));
        assert!(ae(&["x-gzip"]));
        assert!(ae(&["*"]));
        assert!(ae(&["br", "gzip"]));
        assert!(!ae(&[]));
        assert!(!ae(&["identity"]));
        assert!(!ae(&["gzip;q=0"]));
        assert!(!ae(&["gzip; q=0.000"]));
        assert!(!ae(&["*, gzip;q=0"]));
        assert!(!ae(&["gzip;q=bogus"]));
        assert!(ae(&["gzip;q=0.001, *;q=0"]));
    }

    #[test]
    fn content_encoding_parsing() {
        let ce = |v: &[&'static str]| request_coding(&headers("content-encoding", v)).ok();
        assert_eq!(ce(&[]), Some(RequestCoding::Identity));
        assert_eq!(ce(&["identity"]), Some(RequestCoding::Identity));
        assert_eq!(ce(&["gzip"]), Some(RequestCoding::Gzip));
        assert_eq!(ce(&["X-GZIP"]), Some(RequestCoding::Gzip));
        assert_eq!(ce(&["identity, gzip"]), Some(RequestCoding::Gzip));
        assert_eq!(ce(&["br"]), None);
        assert_eq!(ce(&["gzip, gzip"]), None);
        assert_eq!(ce(&["gzip", "deflate"]), None);
    }

    fn unlimited() -> Reservation {
        ByteBudget::new(usize::MAX).empty()
    }

    #[test]
    fn gunzip_roundtrip_and_limits() {
        let gunzip = |data: &[u8], limit| gunzip_limited(data, limit, &mut unlimited());
        let data = vec![b'x'; 10_000];
        let gz = gzip_encode(&data).unwrap();
        assert_eq!(gunzip(&gz, 10_000).unwrap(), data);
        assert!(matches!(
            gunzip(&gz, 9_999),
            Err(RequestError::DecodedTooLarge { limit: 9_999 })
        ));
        // Two members decode as their concatenation.
        let mut two = gz.clone();
        two.extend_from_slice(&gz);
        assert_eq!(gunzip(&two, 20_000).unwrap().len(), 20_000);
        assert!(matches!(
            gunzip(b"not gzip at all", 100),
            Err(RequestError::CorruptGzip(_))
        ));
        assert!(matches!(
            gunzip(&gz[..gz.len() / 2], 100_000),
            Err(RequestError::CorruptGzip(_))
        ));
        assert!(gunzip(b"", 10).unwrap().is_empty());
        // Larger than the first buffer: several doublings.
        let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let gz = gzip_encode(&big).unwrap();
        assert_eq!(gunzip(&gz, 1_000_000).unwrap(), big);
    }

    #[test]
    fn gunzip_counts_its_output_in_the_budget() {
        let data = vec![0u8; 1 << 20];
        let gz = gzip_encode(&data).unwrap();
        // The output buffer is reserved as it grows, and refused past the budget.
        let budget = ByteBudget::new(300 << 10);
        let mut reservation = budget.empty();
        assert!(matches!(
            gunzip_limited(&gz, 16 << 20, &mut reservation),
            Err(RequestError::Busy)
        ));
        assert!(budget.in_use() <= 300 << 10);
        drop(reservation);
        assert_eq!(budget.in_use(), 0);
        // With room, it is held by the reservation until dropped.
        let budget = ByteBudget::new(4 << 20);
        let mut reservation = budget.empty();
        let out = gunzip_limited(&gz, 16 << 20, &mut reservation).unwrap();
        assert_eq!(out.len(), 1 << 20);
        assert!(reservation.bytes() >= 1 << 20);
        assert!(reservation.bytes() <= 2 << 20);
    }

    #[test]
    fn framing_is_required() {
        assert!(!has_framing(&hyper::HeaderMap::new()));
        assert!(has_framing(&headers("content-length", &["0"])));
        assert!(has_framing(&headers("transfer-encoding", &["chunked"])));
    }
}
