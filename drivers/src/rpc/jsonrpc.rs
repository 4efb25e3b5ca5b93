//! JSON-RPC 2.0 framing: one call or a batch in, the answers out, with the standard error
//! codes (-32700 parse error, -32600 invalid request, -32601 unknown method, -32602 invalid
//! params; -32000 for a method's own error, as geth).
//!
//! Contract: no input makes this panic or touch the node except through a well-formed call;
//! a batch longer than [`MAX_BATCH_LEN`](super::MAX_BATCH_LEN) is refused whole; a call
//! without `id` (a notification) runs and gets no answer; an answer is `None` when nothing is
//! to be sent back (all notifications).

use std::sync::atomic::Ordering;

use serde_json::{json, Value};
use smol::channel::Sender;

use hush_core::whisper::api::PushedMessage;

use super::shh::{self, Call};
use super::{Ctx, MAX_BATCH_LEN};

/// Invalid JSON.
pub const PARSE_ERROR: i64 = -32700;
/// Not a request object.
pub const INVALID_REQUEST: i64 = -32600;
/// No such method.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Parameters do not fit.
pub const INVALID_PARAMS: i64 = -32602;
/// A method's own error (geth's default code).
pub const METHOD_ERROR: i64 = -32000;

/// A JSON-RPC error before or instead of a result.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// The code.
    pub code: i64,
    /// The message.
    pub message: String,
}

impl RpcError {
    /// An error with a code and message.
    pub fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
        }
    }
}

/// The connection's side of subscriptions (WebSocket only).
pub struct Subscriptions {
    /// Where the driver puts this connection's notifications.
    pub sink: Sender<PushedMessage>,
    /// Ids of this connection's subscriptions.
    pub ids: Vec<String>,
}

fn error_object(id: Value, e: &RpcError) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": e.code, "message": e.message}})
}

fn count(ctx: &Ctx, e: &RpcError) {
    let c = &ctx.counters;
    let counter = match e.code {
        PARSE_ERROR => &c.parse_errors,
        INVALID_REQUEST => &c.invalid_requests,
        METHOD_NOT_FOUND => &c.unknown_methods,
        INVALID_PARAMS => &c.invalid_params,
        _ => &c.call_errors,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Answers one body (HTTP) or text message (WebSocket).
pub(crate) async fn handle(
    ctx: &Ctx,
    body: &[u8],
    subs: Option<&mut Subscriptions>,
) -> Option<String> {
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            let e = RpcError::new(PARSE_ERROR, format!("parse error: {e}"));
            count(ctx, &e);
            return Some(error_object(Value::Null, &e).to_string());
        }
    };
    let mut subs = subs;
    match value {
        Value::Array(calls) => {
            if calls.is_empty() || calls.len() > MAX_BATCH_LEN {
                let e = if calls.is_empty() {
                    RpcError::new(INVALID_REQUEST, "empty batch")
                } else {
                    ctx.counters
                        .batches_too_long
                        .fetch_add(1, Ordering::Relaxed);
                    RpcError::new(
                        INVALID_REQUEST,
                        format!("batch of {} calls exceeds {MAX_BATCH_LEN}", calls.len()),
                    )
                };
                count(ctx, &e);
                return Some(error_object(Value::Null, &e).to_string());
            }
            let mut answers = Vec::new();
            for call in calls {
                if let Some(a) = handle_one(ctx, call, subs.as_deref_mut()).await {
                    answers.push(a);
                }
            }
            (!answers.is_empty()).then(|| Value::Array(answers).to_string())
        }
        other => handle_one(ctx, other, subs).await.map(|a| a.to_string()),
    }
}

/// A valid id: absent (notification), null, a number or a string.
fn request_id(obj: &serde_json::Map<String, Value>) -> Result<Option<Value>, RpcError> {
    match obj.get("id") {
        None => Ok(None),
        Some(v @ (Value::Null | Value::Number(_) | Value::String(_))) => Ok(Some(v.clone())),
        Some(_) => Err(RpcError::new(INVALID_REQUEST, "invalid request id")),
    }
}

async fn handle_one(ctx: &Ctx, call: Value, subs: Option<&mut Subscriptions>) -> Option<Value> {
    let Value::Object(obj) = call else {
        let e = RpcError::new(INVALID_REQUEST, "invalid request: not an object");
        count(ctx, &e);
        return Some(error_object(Value::Null, &e));
    };
    let id = match request_id(&obj) {
        Ok(id) => id,
        Err(e) => {
            count(ctx, &e);
            return Some(error_object(Value::Null, &e));
        }
    };
    let answer_id = id.clone().unwrap_or(Value::Null);
    let method = match (obj.get("jsonrpc"), obj.get("method")) {
        (Some(Value::String(v)), Some(Value::String(m))) if v == "2.0" => m.clone(),
        _ => {
            let e = RpcError::new(
                INVALID_REQUEST,
                "invalid request: needs \"jsonrpc\": \"2.0\" and a method name",
            );
            count(ctx, &e);
            return Some(error_object(answer_id, &e));
        }
    };
    let params = obj.get("params").cloned().unwrap_or(Value::Null);
    let result = run(ctx, &method, params, subs).await;
    ctx.counters.calls.fetch_add(1, Ordering::Relaxed);
    if let Err(e) = &result {
        count(ctx, e);
    }
    // A notification (no id) gets no answer, not even an error.
    id.as_ref()?;
    Some(match result {
        Ok(v) => json!({"jsonrpc": "2.0", "id": answer_id, "result": v}),
        Err(e) => error_object(answer_id, &e),
    })
}

async fn run(
    ctx: &Ctx,
    method: &str,
    params: Value,
    subs: Option<&mut Subscriptions>,
) -> Result<Value, RpcError> {
    match shh::parse_call(method, params)? {
        Call::Shh(request) => {
            let response = ctx
                .call(request, None)
                .await
                .map_err(|e| RpcError::new(METHOD_ERROR, e.to_string()))?;
            Ok(shh::response_json(response))
        }
        Call::Subscribe(criteria) => {
            let Some(subs) = subs else {
                ctx.counters
                    .subscriptions_refused
                    .fetch_add(1, Ordering::Relaxed);
                return Err(RpcError::new(
                    METHOD_NOT_FOUND,
                    "notifications not supported",
                ));
            };
            if subs.ids.len() >= super::MAX_SUBSCRIPTIONS_PER_CONNECTION {
                ctx.counters
                    .subscriptions_refused
                    .fetch_add(1, Ordering::Relaxed);
                return Err(RpcError::new(
                    METHOD_ERROR,
                    format!(
                        "too many subscriptions on this connection (at most {})",
                        super::MAX_SUBSCRIPTIONS_PER_CONNECTION
                    ),
                ));
            }
            let request = hush_core::node::ShhRequest::Subscribe(criteria);
            match ctx.call(request, Some(subs.sink.clone())).await {
                Ok(hush_core::node::ShhResponse::Text(id)) => {
                    subs.ids.push(id.clone());
                    Ok(Value::String(id))
                }
                Ok(other) => Ok(shh::response_json(other)),
                Err(e) => Err(RpcError::new(METHOD_ERROR, e.to_string())),
            }
        }
        Call::Unsubscribe(id) => {
            // Only this connection's own subscriptions (geth: "subscription not found").
            let Some(pos) = subs
                .as_ref()
                .and_then(|s| s.ids.iter().position(|i| *i == id))
            else {
                return Err(RpcError::new(METHOD_ERROR, "subscription not found"));
            };
            if let Some(s) = subs {
                s.ids.remove(pos);
            }
            let request = hush_core::node::ShhRequest::Unsubscribe(id);
            ctx.call(request, None)
                .await
                .map(shh::response_json)
                .map_err(|e| RpcError::new(METHOD_ERROR, e.to_string()))
        }
    }
}
