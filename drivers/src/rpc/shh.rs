//! geth's `shh_` parameter and result shapes (go-ethereum 1.9 `whisperv6/api.go`): positional
//! params; `hexutil.Bytes` as `0x`-prefixed hex; topics as `0x` + 8 hex digits; `NewMessage`,
//! `Criteria` and `Message` objects with Go's JSON field names.
//!
//! Contract: total — any JSON gives a [`Call`] or an [`RpcError`] (-32601 for an unknown method
//! or subscription name, -32602 for parameters that do not fit), never a panic.

use serde_json::{json, Map, Value};

use hush_core::node::{Criteria, NewMessage, NodePublicKey, ShhRequest, ShhResponse};
use hush_core::p2p::enode::Enode;
use hush_core::whisper::api::ApiMessage;
use hush_core::whisper::{Topic, TOPIC_LEN};

use super::jsonrpc::{RpcError, INVALID_PARAMS, METHOD_NOT_FOUND};

/// A parsed call.
#[derive(Debug, PartialEq)]
pub enum Call {
    /// Answered by the node.
    Shh(ShhRequest),
    /// `shh_subscribe("messages", criteria)` (WebSocket only).
    Subscribe(Criteria),
    /// `shh_unsubscribe(id)`.
    Unsubscribe(String),
}

/// Every method served, for docs and tests.
pub const METHODS: [&str; 24] = [
    "shh_version",
    "shh_info",
    "shh_setMaxMessageSize",
    "shh_setMinPoW",
    "shh_setBloomFilter",
    "shh_markTrustedPeer",
    "shh_newKeyPair",
    "shh_addPrivateKey",
    "shh_deleteKeyPair",
    "shh_hasKeyPair",
    "shh_getPublicKey",
    "shh_getPrivateKey",
    "shh_newSymKey",
    "shh_addSymKey",
    "shh_generateSymKeyFromPassword",
    "shh_hasSymKey",
    "shh_getSymKey",
    "shh_deleteSymKey",
    "shh_post",
    "shh_newMessageFilter",
    "shh_getFilterMessages",
    "shh_deleteMessageFilter",
    "shh_subscribe",
    "shh_unsubscribe",
];

fn bad(i: usize, why: impl std::fmt::Display) -> RpcError {
    RpcError::new(INVALID_PARAMS, format!("invalid argument {i}: {why}"))
}

/// Positional params: `null`/absent = none; an array; at most `max` of them.
fn positional(params: Value, max: usize) -> Result<Vec<Value>, RpcError> {
    let list = match params {
        Value::Null => Vec::new(),
        Value::Array(a) => a,
        _ => return Err(RpcError::new(INVALID_PARAMS, "non-array args")),
    };
    if list.len() > max {
        return Err(RpcError::new(
            INVALID_PARAMS,
            format!("too many arguments, want at most {max}"),
        ));
    }
    Ok(list)
}

fn required(list: &[Value], i: usize) -> Result<&Value, RpcError> {
    match list.get(i) {
        Some(v) => Ok(v),
        None => Err(RpcError::new(
            INVALID_PARAMS,
            format!("missing value for required argument {i}"),
        )),
    }
}

fn string(v: &Value, i: usize) -> Result<String, RpcError> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| bad(i, "expected a string"))
}

/// `hexutil.Bytes`: `0x` then an even number of hex digits (or `""`: none).
pub fn hex_bytes(v: &Value, i: usize) -> Result<Vec<u8>, RpcError> {
    let s = v
        .as_str()
        .ok_or_else(|| bad(i, "expected a 0x-prefixed hex string"))?;
    if s.is_empty() {
        // Go's hexutil accepts an empty string as no bytes.
        return Ok(Vec::new());
    }
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .ok_or_else(|| bad(i, "hex string without 0x prefix"))?;
    hex::decode(digits).map_err(|e| bad(i, format!("invalid hex string: {e}")))
}

fn topic(v: &Value, i: usize) -> Result<Topic, RpcError> {
    let b = hex_bytes(v, i)?;
    if b.len() != TOPIC_LEN {
        return Err(bad(
            i,
            format!("topic must be {TOPIC_LEN} bytes, got {}", b.len()),
        ));
    }
    Ok(Topic::from_bytes(&b))
}

fn u32_field(v: &Value, i: usize, what: &str) -> Result<u32, RpcError> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| bad(i, format!("{what}: expected a whole number below 2^32")))
}

fn f64_field(v: &Value, i: usize, what: &str) -> Result<f64, RpcError> {
    v.as_f64()
        .ok_or_else(|| bad(i, format!("{what}: expected a number")))
}

fn enode_key(v: &Value, i: usize) -> Result<NodePublicKey, RpcError> {
    let s = string(v, i)?;
    s.parse::<Enode>()
        .map(|e| e.public_key)
        .map_err(|e| bad(i, format!("invalid enode: {e}")))
}

fn object(v: &Value, i: usize) -> Result<&Map<String, Value>, RpcError> {
    v.as_object().ok_or_else(|| bad(i, "expected an object"))
}

/// A non-empty optional string field (Go treats `""` as not given).
fn opt_string(o: &Map<String, Value>, key: &str, i: usize) -> Result<Option<String>, RpcError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => Ok(Some(string(v, i)?).filter(|s| !s.is_empty())),
    }
}

fn opt_bytes(o: &Map<String, Value>, key: &str, i: usize) -> Result<Option<Vec<u8>>, RpcError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => Ok(Some(hex_bytes(v, i)?).filter(|b| !b.is_empty())),
    }
}

fn field<'a>(o: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    o.get(key).filter(|v| !v.is_null())
}

fn new_message(v: &Value, i: usize) -> Result<NewMessage, RpcError> {
    let o = object(v, i)?;
    let mut m = NewMessage {
        sym_key_id: opt_string(o, "symKeyID", i)?,
        pub_key: opt_bytes(o, "pubKey", i)?,
        sig: opt_string(o, "sig", i)?,
        payload: opt_bytes(o, "payload", i)?.unwrap_or_default(),
        padding: opt_bytes(o, "padding", i)?.unwrap_or_default(),
        ..NewMessage::default()
    };
    if let Some(t) = field(o, "ttl") {
        m.ttl_secs = u32_field(t, i, "ttl")?;
    }
    if let Some(t) = field(o, "topic") {
        m.topic = topic(t, i)?;
    }
    if let Some(t) = field(o, "powTime") {
        m.pow_time_secs = u32_field(t, i, "powTime")?;
    }
    if let Some(t) = field(o, "powTarget") {
        m.pow_target = f64_field(t, i, "powTarget")?;
    }
    if let Some(peer) = opt_string(o, "targetPeer", i)? {
        m.target_peer = Some(enode_key(&Value::String(peer), i)?);
    }
    Ok(m)
}

fn criteria(v: &Value, i: usize) -> Result<Criteria, RpcError> {
    let o = object(v, i)?;
    let mut c = Criteria {
        sym_key_id: opt_string(o, "symKeyID", i)?,
        private_key_id: opt_string(o, "privateKeyID", i)?,
        sig: opt_bytes(o, "sig", i)?,
        ..Criteria::default()
    };
    if let Some(p) = field(o, "minPow") {
        c.min_pow = f64_field(p, i, "minPow")?;
    }
    if let Some(t) = field(o, "topics") {
        let list = t
            .as_array()
            .ok_or_else(|| bad(i, "topics: expected an array"))?;
        c.topics = list.iter().map(|t| topic(t, i)).collect::<Result<_, _>>()?;
    }
    if let Some(a) = field(o, "allowP2P") {
        c.allow_p2p = a
            .as_bool()
            .ok_or_else(|| bad(i, "allowP2P: expected a boolean"))?;
    }
    Ok(c)
}

/// Parses a method call.
pub fn parse_call(method: &str, params: Value) -> Result<Call, RpcError> {
    use ShhRequest as R;
    let none = |params: Value| positional(params, 0).map(drop);
    let one = |params: Value| -> Result<Value, RpcError> {
        let list = positional(params, 1)?;
        required(&list, 0).cloned()
    };
    let id = |params: Value| -> Result<String, RpcError> { string(&one(params)?, 0) };
    Ok(Call::Shh(match method {
        "shh_version" => none(params).map(|()| R::Version)?,
        "shh_info" => none(params).map(|()| R::Info)?,
        "shh_setMaxMessageSize" => R::SetMaxMessageSize(u32_field(&one(params)?, 0, "size")?),
        "shh_setMinPoW" => R::SetMinPow(f64_field(&one(params)?, 0, "pow")?),
        "shh_setBloomFilter" => R::SetBloomFilter(hex_bytes(&one(params)?, 0)?),
        "shh_markTrustedPeer" => R::MarkTrustedPeer(enode_key(&one(params)?, 0)?),
        "shh_newKeyPair" => none(params).map(|()| R::NewKeyPair)?,
        "shh_addPrivateKey" => R::AddPrivateKey(hex_bytes(&one(params)?, 0)?),
        "shh_deleteKeyPair" => R::DeleteKeyPair(id(params)?),
        "shh_hasKeyPair" => R::HasKeyPair(id(params)?),
        "shh_getPublicKey" => R::GetPublicKey(id(params)?),
        "shh_getPrivateKey" => R::GetPrivateKey(id(params)?),
        "shh_newSymKey" => none(params).map(|()| R::NewSymKey)?,
        "shh_addSymKey" => R::AddSymKey(hex_bytes(&one(params)?, 0)?),
        "shh_generateSymKeyFromPassword" => R::GenerateSymKeyFromPassword(id(params)?),
        "shh_hasSymKey" => R::HasSymKey(id(params)?),
        "shh_getSymKey" => R::GetSymKey(id(params)?),
        "shh_deleteSymKey" => R::DeleteSymKey(id(params)?),
        "shh_post" => R::Post(new_message(&one(params)?, 0)?),
        "shh_newMessageFilter" => R::NewMessageFilter(criteria(&one(params)?, 0)?),
        "shh_getFilterMessages" => R::GetFilterMessages(id(params)?),
        "shh_deleteMessageFilter" => R::DeleteMessageFilter(id(params)?),
        "shh_subscribe" => {
            let list = positional(params, 2)?;
            let name = string(required(&list, 0)?, 0)?;
            if name != "messages" {
                return Err(RpcError::new(
                    METHOD_NOT_FOUND,
                    format!("no {name:?} subscription in shh namespace"),
                ));
            }
            return Ok(Call::Subscribe(criteria(required(&list, 1)?, 1)?));
        }
        "shh_unsubscribe" => return Ok(Call::Unsubscribe(id(params)?)),
        _ => {
            return Err(RpcError::new(
                METHOD_NOT_FOUND,
                format!("the method {method} does not exist/is not available"),
            ))
        }
    }))
}

fn hex0x(b: &[u8]) -> Value {
    Value::String(format!("0x{}", hex::encode(b)))
}

/// Go `whisperv6.Message` as JSON.
pub fn message_json(m: &ApiMessage) -> Value {
    let mut o = Map::new();
    if let Some(sig) = &m.sig {
        o.insert("sig".into(), hex0x(sig));
    }
    o.insert("ttl".into(), m.ttl_secs.into());
    o.insert("timestamp".into(), m.timestamp_secs.into());
    o.insert("topic".into(), hex0x(&m.topic.0));
    o.insert("payload".into(), hex0x(&m.payload));
    o.insert("padding".into(), hex0x(&m.padding));
    o.insert("pow".into(), json!(m.pow));
    o.insert("hash".into(), hex0x(&m.hash));
    if let Some(dst) = &m.recipient {
        o.insert("recipientPublicKey".into(), hex0x(dst));
    }
    Value::Object(o)
}

/// A node answer as JSON.
pub fn response_json(r: ShhResponse) -> Value {
    match r {
        ShhResponse::Bool(b) => Value::Bool(b),
        ShhResponse::Text(t) => Value::String(t),
        ShhResponse::Bytes(b) => hex0x(&b),
        ShhResponse::Info(i) => json!({
            "memory": i.memory_bytes,
            "messages": i.messages,
            "minPow": i.min_pow,
            "maxMessageSize": i.max_message_size,
        }),
        ShhResponse::Messages(list) => Value::Array(list.iter().map(message_json).collect()),
    }
}
