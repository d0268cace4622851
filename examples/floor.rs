//! The benchmark floor: the smallest HTTP/1.1 server built from the same pieces as
//! roundup-xmlrpc-server (hyper 1.x `http1`, tokio's multi-thread runtime), which
//! reads each POST body and answers with one fixed XML-RPC response.
//!
//! No parsing, no authentication, no storage: whatever roundup-xmlrpc-server does
//! beyond this is the cost of being an issue tracker, so `bench/run` reports every
//! figure also as a ratio to this one.
//!
//! ```sh
//! cargo run --release --example floor -- [PORT]   # prints "listening on http://ADDR/"
//! ```

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The answer to every request: what `lookup('status', 'chatting')` returns.
const ANSWER: &[u8] = b"<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n\
<value><string>3</string></value>\n</param>\n</params>\n</methodResponse>\n";

/// Reads the whole request body (as a real server must) and answers [`ANSWER`].
async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // A failed body read still gets the answer; the floor never errors.
    let _ = req.into_body().collect().await;
    let response = Response::builder()
        .header("Content-Type", "text/xml")
        .body(Full::new(Bytes::from_static(ANSWER)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::from_static(ANSWER))));
    Ok(response)
}

fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
        println!("listening on http://{}/", listener.local_addr()?);
        std::io::stdout().flush()?;
        loop {
            let (stream, _) = listener.accept().await?;
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service_fn(answer))
                    .await;
            });
        }
    })
}
