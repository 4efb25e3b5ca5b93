//! JSON-RPC over WebSocket (`--ws`, `async-tungstenite` on smol's TCP streams): the same calls
//! as HTTP, plus `shh_subscribe` / `shh_unsubscribe` with `shh_subscription` notifications.
//!
//! Contract: at most [`RpcConfig::max_ws_connections`](super::RpcConfig) connections (the next
//! gets 503 and is closed); the handshake must finish within [`HTTP_READ_TIMEOUT_SECS`] and
//! pass the `Host` (vhosts) and `Origin` (`--ws-origins`) checks, else 403; a message over
//! [`MAX_REQUEST_BODY_BYTES`] closes the connection. Each connection has one bounded
//! notification queue ([`MAX_QUEUED_NOTIFICATIONS`]); when the driver finds it full it closes
//! it and the connection is closed with 1008 (slow consumer, counted). When a connection ends,
//! its subscriptions are removed from the node.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_io::Timer;
use async_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use async_tungstenite::tungstenite::http::StatusCode;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use async_tungstenite::tungstenite::{error::CapacityError, Error as WsError, Message};
use futures_lite::{FutureExt, StreamExt};
use hush_core::node::ShhRequest;
use serde_json::json;
use smol::net::{TcpListener, TcpStream};

use super::jsonrpc::{self, Subscriptions};
use super::{
    origin_listed, shh, Ctx, Slot, HTTP_READ_TIMEOUT_SECS, MAX_QUEUED_NOTIFICATIONS,
    MAX_REQUEST_BODY_BYTES,
};

/// Accepts connections until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, ctx: Arc<Ctx>) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            Timer::after(Duration::from_millis(50)).await;
            continue;
        };
        let Some(slot) = Slot::take(&open, ctx.config.max_ws_connections) else {
            ctx.counters
                .ws_connections_refused
                .fetch_add(1, Ordering::Relaxed);
            smol::spawn(async move {
                let refused = super::http::respond(
                    &mut stream,
                    503,
                    "too many connections\n",
                    "text/plain",
                    &[],
                    false,
                )
                .await;
                if refused.is_ok() {
                    super::http::linger_close(stream).await;
                }
            })
            .detach();
            continue;
        };
        let ctx = ctx.clone();
        smol::spawn(async move {
            ctx.counters.ws_open.fetch_add(1, Ordering::Relaxed);
            connection(stream, &ctx).await;
            ctx.counters.ws_open.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        })
        .detach();
    }
}

fn forbidden(text: &str) -> ErrorResponse {
    let mut r = ErrorResponse::new(Some(text.to_string()));
    *r.status_mut() = StatusCode::FORBIDDEN;
    r
}

enum Event {
    Incoming(Option<Result<Message, WsError>>),
    Notification(Result<hush_core::whisper::api::PushedMessage, smol::channel::RecvError>),
}

async fn connection(stream: TcpStream, ctx: &Ctx) {
    // The error type is tungstenite's `Callback` signature, not ours to shrink.
    #[allow(clippy::result_large_err)]
    let check = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        if !ctx.host_allowed(header("host")) {
            return Err(forbidden("invalid host specified\n"));
        }
        if let Some(origin) = header("origin") {
            if !origin_listed(&ctx.config.ws_origins, origin) {
                return Err(forbidden("origin not allowed\n"));
            }
        }
        Ok(resp)
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_REQUEST_BODY_BYTES))
        .max_frame_size(Some(MAX_REQUEST_BODY_BYTES));
    let handshake = async {
        Some(async_tungstenite::accept_hdr_async_with_config(stream, check, Some(config)).await)
    };
    let timeout = async {
        Timer::after(Duration::from_secs(HTTP_READ_TIMEOUT_SECS)).await;
        None
    };
    let mut ws = match handshake.or(timeout).await {
        Some(Ok(ws)) => ws,
        _ => {
            ctx.counters
                .ws_handshakes_refused
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let (sink, notifications) = smol::channel::bounded(MAX_QUEUED_NOTIFICATIONS);
    let mut subs = Subscriptions {
        sink,
        ids: Vec::new(),
    };
    loop {
        let event = async { Event::Incoming(ws.next().await) }
            .or(async { Event::Notification(notifications.recv().await) })
            .await;
        match event {
            Event::Incoming(Some(Ok(message))) => {
                let body = match &message {
                    Message::Text(t) => t.as_bytes(),
                    Message::Binary(b) => &b[..],
                    Message::Close(_) => break,
                    // Pings are answered by the library; pongs and raw frames mean nothing here.
                    _ => continue,
                };
                if let Some(answer) = jsonrpc::handle(ctx, body, Some(&mut subs)).await {
                    if ws.send(Message::text(answer)).await.is_err() {
                        break;
                    }
                }
            }
            Event::Incoming(Some(Err(WsError::Capacity(CapacityError::MessageTooLong {
                ..
            })))) => {
                ctx.counters
                    .ws_messages_too_large
                    .fetch_add(1, Ordering::Relaxed);
                let _ = ws
                    .close(Some(CloseFrame {
                        code: CloseCode::Size,
                        reason: "message too large".into(),
                    }))
                    .await;
                break;
            }
            Event::Incoming(_) => break,
            Event::Notification(Ok(pushed)) => {
                let note = json!({
                    "jsonrpc": "2.0",
                    "method": "shh_subscription",
                    "params": {
                        "subscription": pushed.filter,
                        "result": shh::message_json(&pushed.message),
                    },
                });
                ctx.counters
                    .notifications_sent
                    .fetch_add(1, Ordering::Relaxed);
                if ws.send(Message::text(note.to_string())).await.is_err() {
                    break;
                }
            }
            Event::Notification(Err(_)) => {
                // The driver closed our queue: it was full.
                ctx.counters
                    .slow_consumers_disconnected
                    .fetch_add(1, Ordering::Relaxed);
                let _ = ws
                    .close(Some(CloseFrame {
                        code: CloseCode::Policy,
                        reason: "too many queued notifications".into(),
                    }))
                    .await;
                break;
            }
        }
    }
    for id in subs.ids.drain(..) {
        let _ = ctx.call(ShhRequest::Unsubscribe(id), None).await;
    }
}
