//! Transit (non-verbose JSON) codec for the `c4` chat message record (status-chat.md §5–§6.1).
//!
//! Contract:
//! - [`C4Message::decode`] reads `["~#c4",[text, content-type, message-type, clock, timestamp,
//!   content]]` with the Transit rules status-go and status-react apply: keyword strings
//!   (`~:`), escaped strings (`~~`, `~^`, `` ~` ``), big integers (`~i`), maps (`["^ ", k, v,
//!   …]`) and the read cache (`^0`, `^1`, …, one cache per top-level value). Indices beyond 5
//!   are ignored; a wrong type at a known index is an error. status-react's non-text form (the
//!   content map at index 0, five elements) is accepted too. Total: never panics.
//! - [`C4Message::encode`] writes the 6-element text form as status-react did in late 2019,
//!   compact JSON, content keys in ascending order (`chat-id`, `name`, `response-to`, `text`,
//!   then extra keys), applying the write cache. This reproduces the spec example and the
//!   status-go test vector byte for byte (modulo that vector's whitespace). Non-ASCII text is
//!   written as UTF-8, not `\u` escapes.

use std::collections::BTreeMap;

use serde_json::Value;

use super::ChatError;

/// Strings shorter than this are never cached (`MIN_SIZE_CACHEABLE`).
const MIN_CACHEABLE_LEN: usize = 4;
/// Cache codes are base-44 digits starting at '0' (`CACHE_CODE_DIGITS`).
const CACHE_CODE_DIGITS: usize = 44;
/// The cache is cleared when it reaches 44 × 44 entries (`MAX_CACHE_ENTRIES`).
const MAX_CACHE_ENTRIES: usize = CACHE_CODE_DIGITS * CACHE_CODE_DIGITS;
/// Integers above this are written as `~i` strings (JavaScript's safe integer limit).
const MAX_JSON_INT: u64 = (1 << 53) - 1;
/// The record tag of a chat message.
pub const C4_TAG: &str = "c4";

/// `message-type` of a `c4` record.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum MessageType {
    /// `~:public-group-user-message` (public chat).
    PublicGroupUserMessage,
    /// `~:user-message` (1:1).
    UserMessage,
    /// `~:group-user-message` (private group).
    GroupUserMessage,
    /// Any other keyword (kept for forward compatibility).
    Other(String),
}

impl MessageType {
    fn from_keyword(k: &str) -> Self {
        match k {
            "public-group-user-message" => MessageType::PublicGroupUserMessage,
            "user-message" => MessageType::UserMessage,
            "group-user-message" => MessageType::GroupUserMessage,
            other => MessageType::Other(other.to_string()),
        }
    }

    /// The keyword name (without `~:`).
    pub fn as_keyword(&self) -> &str {
        match self {
            MessageType::PublicGroupUserMessage => "public-group-user-message",
            MessageType::UserMessage => "user-message",
            MessageType::GroupUserMessage => "group-user-message",
            MessageType::Other(s) => s,
        }
    }
}

/// The content map of a `c4` record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct C4Content {
    /// `~:chat-id` (public chat name, hex pubkey or group id).
    pub chat_id: String,
    /// `~:text`.
    pub text: String,
    /// `~:response-to` (message id hex).
    pub response_to: Option<String>,
    /// `~:name` (ENS name).
    pub name: Option<String>,
    /// Other keyword keys with string (or keyword) values; other value types are dropped.
    pub extra: BTreeMap<String, String>,
}

/// A Transit `c4` chat message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct C4Message {
    /// Index 0: the text.
    pub text: String,
    /// Index 1: content type, e.g. `text/plain`.
    pub content_type: String,
    /// Index 2: message type.
    pub message_type: MessageType,
    /// Index 3: Lamport clock.
    pub clock: u64,
    /// Index 4: creation time, Unix ms.
    pub timestamp_ms: u64,
    /// Index 5: content map.
    pub content: C4Content,
}

/// A decoded Transit value (the subset the chat records use). Crate-visible so that other
/// records (`g5`, [`super::group`]) reuse the same reader and cache.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tv {
    Null,
    Bool(bool),
    Int(i128),
    Str(String),
    Keyword(String),
    Tagged(String, Box<Tv>),
    Array(Vec<Tv>),
    Map(Vec<(Tv, Tv)>),
    Other,
}

fn is_cacheable(s: &str, as_key: bool) -> bool {
    s.len() >= MIN_CACHEABLE_LEN
        && (as_key || s.starts_with("~#") || s.starts_with("~:") || s.starts_with("~$"))
}

fn cache_code(i: usize) -> String {
    let d = |n: usize| char::from(b'0' + (n % CACHE_CODE_DIGITS) as u8);
    if i < CACHE_CODE_DIGITS {
        format!("^{}", d(i))
    } else {
        format!("^{}{}", d(i / CACHE_CODE_DIGITS), d(i % CACHE_CODE_DIGITS))
    }
}

fn cache_index(code: &str) -> Option<usize> {
    let digit = |c: u8| {
        (c >= b'0' && usize::from(c - b'0') < CACHE_CODE_DIGITS).then(|| usize::from(c - b'0'))
    };
    match code.as_bytes() {
        [a] => digit(*a),
        [a, b] => Some(digit(*a)? * CACHE_CODE_DIGITS + digit(*b)?),
        _ => None,
    }
}

/// Read side of the Transit cache.
#[derive(Default)]
pub(crate) struct ReadCache {
    entries: Vec<String>,
}

impl ReadCache {
    fn resolve(&mut self, s: &str, as_key: bool) -> Result<String, ChatError> {
        if let Some(code) = s.strip_prefix('^') {
            if code != " " {
                let i = cache_index(code).ok_or_else(|| ChatError::BadCacheRef(s.to_string()))?;
                return self
                    .entries
                    .get(i)
                    .cloned()
                    .ok_or_else(|| ChatError::BadCacheRef(s.to_string()));
            }
        }
        if is_cacheable(s, as_key) {
            if self.entries.len() >= MAX_CACHE_ENTRIES {
                self.entries.clear();
            }
            self.entries.push(s.to_string());
        }
        Ok(s.to_string())
    }
}

/// Maximum nesting accepted (serde_json itself stops at 128).
const MAX_DEPTH: usize = 64;

fn parse_scalar_str(s: &str) -> Result<Tv, ChatError> {
    if let Some(rest) = s.strip_prefix('~') {
        if let Some(k) = rest.strip_prefix(':') {
            return Ok(Tv::Keyword(k.to_string()));
        }
        if let Some(i) = rest.strip_prefix('i') {
            return i
                .parse::<i128>()
                .map(Tv::Int)
                .map_err(|_| ChatError::Transit("bad ~i integer"));
        }
        if rest.starts_with('~') || rest.starts_with('^') || rest.starts_with('`') {
            return Ok(Tv::Str(rest.to_string()));
        }
        if rest.starts_with('#') {
            return Ok(Tv::Tagged(
                rest.get(1..).unwrap_or_default().to_string(),
                Box::new(Tv::Null),
            ));
        }
        return Ok(Tv::Other);
    }
    Ok(Tv::Str(s.to_string()))
}

pub(crate) fn decode_value(
    v: &Value,
    as_key: bool,
    cache: &mut ReadCache,
    depth: usize,
) -> Result<Tv, ChatError> {
    if depth > MAX_DEPTH {
        return Err(ChatError::Transit("nesting too deep"));
    }
    match v {
        Value::Null => Ok(Tv::Null),
        Value::Bool(b) => Ok(Tv::Bool(*b)),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Ok(Tv::Int(i128::from(u)))
            } else if let Some(i) = n.as_i64() {
                Ok(Tv::Int(i128::from(i)))
            } else {
                Ok(Tv::Other)
            }
        }
        Value::String(s) => {
            let s = cache.resolve(s, as_key)?;
            parse_scalar_str(&s)
        }
        Value::Array(items) => {
            if let Some(Value::String(first)) = items.first() {
                if first == "^ " {
                    let mut pairs = Vec::new();
                    let mut it = items.iter().skip(1);
                    while let Some(k) = it.next() {
                        let key = decode_value(k, true, cache, depth + 1)?;
                        let val = it.next().ok_or(ChatError::Transit("map with odd length"))?;
                        pairs.push((key, decode_value(val, false, cache, depth + 1)?));
                    }
                    return Ok(Tv::Map(pairs));
                }
                if items.len() == 2 {
                    let head = decode_value(&items[0], false, cache, depth + 1)?;
                    if let Tv::Tagged(tag, _) = head {
                        let rep = decode_value(&items[1], false, cache, depth + 1)?;
                        return Ok(Tv::Tagged(tag, Box::new(rep)));
                    }
                    let second = decode_value(&items[1], false, cache, depth + 1)?;
                    return Ok(Tv::Array(vec![head, second]));
                }
            }
            items
                .iter()
                .map(|i| decode_value(i, false, cache, depth + 1))
                .collect::<Result<_, _>>()
                .map(Tv::Array)
        }
        Value::Object(_) => Err(ChatError::Transit("verbose-mode JSON object")),
    }
}

/// Parses JSON bytes and decodes one top-level Transit value with a fresh read cache.
pub(crate) fn decode_top(bytes: &[u8]) -> Result<Tv, ChatError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| ChatError::Json(e.to_string()))?;
    decode_value(&v, false, &mut ReadCache::default(), 0)
}

fn as_u64(v: Option<&Tv>, what: &'static str) -> Result<u64, ChatError> {
    match v {
        Some(Tv::Int(i)) => u64::try_from(*i).map_err(|_| ChatError::Transit(what)),
        _ => Err(ChatError::Transit(what)),
    }
}

fn content_from_map(pairs: &[(Tv, Tv)]) -> C4Content {
    let mut c = C4Content::default();
    for (k, v) in pairs {
        let key = match k {
            Tv::Keyword(k) | Tv::Str(k) => k.as_str(),
            _ => continue,
        };
        let val = match v {
            Tv::Str(s) | Tv::Keyword(s) => s.clone(),
            _ => continue,
        };
        match key {
            "chat-id" => c.chat_id = val,
            "text" => c.text = val,
            "response-to" => c.response_to = Some(val),
            "name" => c.name = Some(val),
            other => {
                c.extra.insert(other.to_string(), val);
            }
        }
    }
    c
}

impl C4Message {
    /// Decodes Transit bytes holding one `c4` record.
    pub fn decode(bytes: &[u8]) -> Result<C4Message, ChatError> {
        C4Message::from_tv(decode_top(bytes)?)
    }

    /// Reads a `c4` record from an already decoded Transit value (e.g. nested in a `g5`).
    pub(crate) fn from_tv(tv: Tv) -> Result<C4Message, ChatError> {
        let Tv::Tagged(tag, rep) = tv else {
            return Err(ChatError::Transit("not a tagged value"));
        };
        if tag != C4_TAG {
            return Err(ChatError::UnexpectedTag(tag));
        }
        let Tv::Array(items) = *rep else {
            return Err(ChatError::Transit("c4 rep is not an array"));
        };
        let content_type = match items.get(1) {
            Some(Tv::Str(s)) => s.clone(),
            _ => return Err(ChatError::Transit("content-type")),
        };
        let message_type = match items.get(2) {
            Some(Tv::Keyword(k)) => MessageType::from_keyword(k),
            _ => return Err(ChatError::Transit("message-type")),
        };
        let clock = as_u64(items.get(3), "clock-value")?;
        let timestamp_ms = as_u64(items.get(4), "timestamp")?;
        let (text, content) = match (items.first(), items.get(5)) {
            (Some(Tv::Str(t)), Some(Tv::Map(m))) => (t.clone(), content_from_map(m)),
            (Some(Tv::Str(t)), None) => (t.clone(), C4Content::default()),
            // status-react's non-text form: content map at index 0.
            (Some(Tv::Map(m)), None) => {
                let c = content_from_map(m);
                (c.text.clone(), c)
            }
            (Some(Tv::Str(_)), Some(_)) => return Err(ChatError::Transit("content")),
            _ => return Err(ChatError::Transit("text")),
        };
        Ok(C4Message {
            text,
            content_type,
            message_type,
            clock,
            timestamp_ms,
            content,
        })
    }

    /// Encodes the record as compact Transit JSON (see module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        let mut out = String::with_capacity(128 + self.text.len() * 2);
        self.write_to(&mut w, &mut out);
        out.into_bytes()
    }

    /// Appends the record to `out` through the caller's write cache (for nesting in `g5`).
    pub(crate) fn write_to(&self, w: &mut Writer, out: &mut String) {
        out.push('[');
        w.raw_str(out, &format!("~#{C4_TAG}"), false);
        out.push_str(",[");
        w.string(out, &self.text);
        out.push(',');
        w.string(out, &self.content_type);
        out.push(',');
        w.raw_str(out, &format!("~:{}", self.message_type.as_keyword()), false);
        out.push(',');
        w.int(out, self.clock);
        out.push(',');
        w.int(out, self.timestamp_ms);
        out.push_str(",[\"^ \"");
        let c = &self.content;
        let mut fields: BTreeMap<&str, &str> = BTreeMap::new();
        for (k, v) in &c.extra {
            fields.insert(k, v);
        }
        fields.insert("chat-id", &c.chat_id);
        fields.insert("text", &c.text);
        if let Some(r) = &c.response_to {
            fields.insert("response-to", r);
        }
        if let Some(n) = &c.name {
            fields.insert("name", n);
        }
        for (k, v) in fields {
            out.push(',');
            w.raw_str(out, &format!("~:{k}"), true);
            out.push(',');
            w.string(out, v);
        }
        out.push_str("]]]");
    }
}

/// Write side of the Transit cache.
#[derive(Default)]
pub(crate) struct Writer {
    cache: BTreeMap<String, usize>,
}

impl Writer {
    /// Writes an already-Transit-encoded string (keyword, tag, escaped string) through the cache.
    pub(crate) fn raw_str(&mut self, out: &mut String, s: &str, as_key: bool) {
        if is_cacheable(s, as_key) {
            if let Some(i) = self.cache.get(s) {
                out.push_str(&json_string(&cache_code(*i)));
                return;
            }
            if self.cache.len() >= MAX_CACHE_ENTRIES {
                self.cache.clear();
            }
            let i = self.cache.len();
            self.cache.insert(s.to_string(), i);
        }
        out.push_str(&json_string(s));
    }

    /// Writes a plain string value, escaping a leading `~`, `^` or `` ` ``.
    pub(crate) fn string(&mut self, out: &mut String, s: &str) {
        if s.starts_with('~') || s.starts_with('^') || s.starts_with('`') {
            self.raw_str(out, &format!("~{s}"), false);
        } else {
            self.raw_str(out, s, false);
        }
    }

    pub(crate) fn int(&mut self, out: &mut String, v: u64) {
        if v > MAX_JSON_INT {
            self.raw_str(out, &format!("~i{v}"), false);
        } else {
            out.push_str(&v.to_string());
        }
    }
}

pub(crate) fn json_string(s: &str) -> String {
    // Serializing a &str cannot fail.
    serde_json::to_string(s).unwrap_or_default()
}
