//! JSON-RPC over HTTP/1.1 POST (`--http`): request heads parsed with `httparse`, bodies by
//! `Content-Length`, keep-alive.
//!
//! Contract: every request is answered or the connection closed, within
//! [`HTTP_READ_TIMEOUT_SECS`] of its first byte and [`HTTP_IDLE_TIMEOUT_SECS`] of idling;
//! refusals (each counted): 503 at the connection limit, 431 for a head over
//! [`MAX_REQUEST_HEAD_BYTES`], 400 for a malformed head, 403 for a foreign `Host` or
//! `Origin`, 405 for another method than POST (OPTIONS answers a CORS preflight), 411 without
//! `Content-Length` (chunked bodies are not taken), 413 for a body over
//! [`MAX_REQUEST_BODY_BYTES`] (then the connection closes without reading it), 415 for another
//! content type than `application/json`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_io::Timer;
use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};
use smol::net::{TcpListener, TcpStream};

use super::{
    jsonrpc, origin_listed, Ctx, Slot, HTTP_IDLE_TIMEOUT_SECS, HTTP_READ_TIMEOUT_SECS,
    MAX_REQUEST_BODY_BYTES, MAX_REQUEST_HEADERS, MAX_REQUEST_HEAD_BYTES,
};

/// Accepts connections until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, ctx: Arc<Ctx>) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            // EMFILE and the like: wait a little rather than spin.
            Timer::after(Duration::from_millis(50)).await;
            continue;
        };
        let Some(slot) = Slot::take(&open, ctx.config.max_http_connections) else {
            ctx.counters
                .http_connections_refused
                .fetch_add(1, Ordering::Relaxed);
            smol::spawn(async move {
                let _ = respond(
                    &mut stream,
                    503,
                    "too many connections\n",
                    "text/plain",
                    &[],
                    false,
                )
                .await;
            })
            .detach();
            continue;
        };
        let ctx = ctx.clone();
        smol::spawn(async move {
            ctx.counters.http_open.fetch_add(1, Ordering::Relaxed);
            connection(stream, &ctx).await;
            ctx.counters.http_open.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        })
        .detach();
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

pub(super) async fn respond(
    stream: &mut TcpStream,
    status: u16,
    body: &str,
    content_type: &str,
    extra: &[(String, String)],
    keep_alive: bool,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        reason(status),
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await
}

/// Bytes of an unread body discarded at most after a refusal, and for how long, before
/// closing: closing a socket with unread input makes the kernel send a reset, which may
/// destroy the refusal before the client reads it.
const LINGER_DISCARD_BYTES: usize = 2 * MAX_REQUEST_BODY_BYTES;
const LINGER_MS: u64 = 2000;

/// Ends our side, then reads and drops what the client still sends (bounded), then closes.
pub(super) async fn linger_close(mut stream: TcpStream) {
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let deadline = std::time::Instant::now() + Duration::from_millis(LINGER_MS);
    let mut discarded = 0usize;
    let mut sink = Vec::new();
    while discarded < LINGER_DISCARD_BYTES {
        sink.clear();
        if !read_more(&mut stream, &mut sink, deadline).await {
            break;
        }
        discarded += sink.len();
    }
}

/// What the head of one request says.
struct Head {
    method: String,
    host: Option<String>,
    origin: Option<String>,
    content_type: Option<String>,
    content_length: Option<Result<usize, ()>>,
    chunked: bool,
    keep_alive: bool,
    head_len: usize,
}

enum Parsed {
    Partial,
    Bad,
    Head(Head),
}

fn parse_head(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_REQUEST_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Bad,
    };
    let value = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(|v| v.trim().to_string())
    };
    let connection = value("connection").map(|c| c.to_ascii_lowercase());
    let http10 = req.version == Some(0);
    let keep_alive = match connection.as_deref() {
        Some(c) if c.contains("close") => false,
        Some(c) if c.contains("keep-alive") => true,
        _ => !http10,
    };
    Parsed::Head(Head {
        method: req.method.unwrap_or_default().to_string(),
        host: value("host"),
        origin: value("origin"),
        content_type: value("content-type"),
        content_length: value("content-length").map(|v| v.parse::<usize>().map_err(drop)),
        chunked: value("transfer-encoding").is_some(),
        keep_alive,
        head_len,
    })
}

/// Reads into `buf` until `done(buf)` or EOF/timeout; false on EOF, error or timeout.
async fn read_more(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: std::time::Instant,
) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    let read = async { stream.read(&mut chunk).await.ok() };
    let timeout = async {
        Timer::at(deadline).await;
        None
    };
    match read.or(timeout).await {
        Some(n) if n > 0 => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
        _ => false,
    }
}

fn cors_headers(ctx: &Ctx, origin: Option<&str>) -> Vec<(String, String)> {
    match origin {
        Some(o) if origin_listed(&ctx.config.cors_origins, o) => vec![
            ("Access-Control-Allow-Origin".into(), o.to_string()),
            ("Vary".into(), "Origin".into()),
        ],
        _ => Vec::new(),
    }
}

async fn connection(mut stream: TcpStream, ctx: &Ctx) {
    let c = &ctx.counters;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // Idle until a request starts, then the read timeout for all of it.
        if buf.is_empty() {
            let idle = std::time::Instant::now() + Duration::from_secs(HTTP_IDLE_TIMEOUT_SECS);
            if !read_more(&mut stream, &mut buf, idle).await {
                if std::time::Instant::now() >= idle {
                    c.http_timeouts.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(HTTP_READ_TIMEOUT_SECS);
        let head = loop {
            match parse_head(&buf) {
                Parsed::Head(h) => break h,
                Parsed::Bad => {
                    c.http_bad_requests.fetch_add(1, Ordering::Relaxed);
                    let _ =
                        respond(&mut stream, 400, "bad request\n", "text/plain", &[], false).await;
                    return;
                }
                Parsed::Partial if buf.len() > MAX_REQUEST_HEAD_BYTES => {
                    c.http_bad_requests.fetch_add(1, Ordering::Relaxed);
                    let _ = respond(
                        &mut stream,
                        431,
                        "request head too large\n",
                        "text/plain",
                        &[],
                        false,
                    )
                    .await;
                    return;
                }
                Parsed::Partial => {
                    if !read_more(&mut stream, &mut buf, deadline).await {
                        if std::time::Instant::now() >= deadline {
                            c.http_timeouts.fetch_add(1, Ordering::Relaxed);
                        }
                        return;
                    }
                }
            }
        };
        c.http_requests.fetch_add(1, Ordering::Relaxed);
        let cors = cors_headers(ctx, head.origin.as_deref());
        // Refusals that leave the body unread close the connection.
        let refuse = |status: u16, text: &'static str| (status, text);
        let refusal = if !ctx.host_allowed(head.host.as_deref()) {
            c.http_forbidden_host.fetch_add(1, Ordering::Relaxed);
            Some(refuse(403, "invalid host specified\n"))
        } else if head
            .origin
            .as_deref()
            .is_some_and(|o| !origin_listed(&ctx.config.cors_origins, o))
        {
            c.http_forbidden_origin.fetch_add(1, Ordering::Relaxed);
            Some(refuse(403, "origin not allowed\n"))
        } else if head.method == "OPTIONS" {
            // An allowed CORS preflight.
            let mut h = cors;
            h.push(("Access-Control-Allow-Methods".into(), "POST".into()));
            h.push(("Access-Control-Allow-Headers".into(), "Content-Type".into()));
            if respond(&mut stream, 204, "", "text/plain", &h, false)
                .await
                .is_err()
            {
                return;
            }
            return;
        } else if head.method != "POST" {
            c.http_bad_requests.fetch_add(1, Ordering::Relaxed);
            Some(refuse(405, "method not allowed\n"))
        } else if head.chunked || head.content_length.is_none() {
            c.http_bad_requests.fetch_add(1, Ordering::Relaxed);
            Some(refuse(411, "Content-Length required\n"))
        } else if matches!(head.content_length, Some(Ok(n)) if n > MAX_REQUEST_BODY_BYTES) {
            c.http_bodies_too_large.fetch_add(1, Ordering::Relaxed);
            Some(refuse(413, "content length too large\n"))
        } else if matches!(head.content_length, Some(Err(()))) {
            c.http_bad_requests.fetch_add(1, Ordering::Relaxed);
            Some(refuse(400, "bad Content-Length\n"))
        } else if !head
            .content_type
            .as_deref()
            .is_some_and(|t| t.to_ascii_lowercase().starts_with("application/json"))
        {
            c.http_bad_requests.fetch_add(1, Ordering::Relaxed);
            Some(refuse(
                415,
                "invalid content type, only application/json is supported\n",
            ))
        } else {
            None
        };
        if let Some((status, text)) = refusal {
            if respond(&mut stream, status, text, "text/plain", &[], false)
                .await
                .is_ok()
            {
                linger_close(stream).await;
            }
            return;
        }
        let Some(Ok(length)) = head.content_length else {
            return;
        };
        let total = head.head_len + length;
        while buf.len() < total {
            if !read_more(&mut stream, &mut buf, deadline).await {
                if std::time::Instant::now() >= deadline {
                    c.http_timeouts.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
        }
        let rest = buf.split_off(total);
        let body = &buf[head.head_len..];
        let answer = jsonrpc::handle(ctx, body, None).await.unwrap_or_default();
        buf = rest;
        if respond(
            &mut stream,
            200,
            &answer,
            "application/json",
            &cors,
            head.keep_alive,
        )
        .await
        .is_err()
            || !head.keep_alive
        {
            return;
        }
    }
}
