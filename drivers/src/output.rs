//! What `hush node` prints and appends to disk.
//!
//! Contract: stdout is machine-readable. Its first line is the node's enode URL; after that,
//! each received chat message is one line, either JSON ([`message_json_line`]) with `--json` or
//! a human-readable line ([`message_human_line`]) without. Delivery is at-least-once across
//! kills: a message committed but not known to be shown is printed again after a restart
//! (`crate::driver`, "Delivery"); JSON lines carry `message_id` for deduplication. Everything else goes to stderr; the
//! stable stderr lines (the e2e test and scripts watch them) come from [`status_line`].
//! [`persist_json_line`] is the record appended to `DATA_DIR/messages.jsonl` for each
//! `Persist::ChatMessage`. No function here adds the line terminator.

use hush_core::node::{ChatMessage, Event};
use serde::Serialize;

/// File, inside the data directory, receiving one JSON line per accepted chat message.
pub const MESSAGES_FILE: &str = "messages.jsonl";

/// Prefix of the stderr line printed when a peer completes its handshakes.
pub const PEER_CONNECTED_PREFIX: &str = "hush: peer connected";

/// Prefix of the stderr line printed when a history request is sent to a mailserver.
pub const HISTORY_SENT_PREFIX: &str = "hush: history requested";
/// Prefix of the stderr line printed when a mailserver completes a history page.
pub const HISTORY_DONE_PREFIX: &str = "hush: history page complete";
/// Prefix of the stderr line printed when a mailserver refuses a history request.
pub const HISTORY_FAILED_PREFIX: &str = "hush: history request failed";

/// Formats a 64-byte wire key (X‖Y) as `0x04…` (132 characters): the member / chat id form.
pub fn wire_key_hex(key: &[u8; 64]) -> String {
    format!("0x04{}", hex::encode(key))
}

/// Formats a 65-byte uncompressed public key as `0x04…` (132 characters), as status-go does.
pub fn key_hex(from: &[u8; 65]) -> String {
    format!("0x{}", hex::encode(from))
}

#[derive(Serialize)]
struct MessageLine<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    reply: Option<&'a str>,
    chat: &'a str,
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    from: String,
    text: &'a str,
    clock: u64,
    timestamp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    received_at: Option<u64>,
    message_id: String,
}

#[derive(Serialize)]
struct PersistLine<'a> {
    chat: &'a str,
    from: String,
    text: &'a str,
    clock: u64,
    timestamp: u64,
    received_at: u64,
    message_id: String,
}

/// A public-chat message received at `received_at` (ms) as a JSON line (see
/// [`kind_json_line`]).
pub fn message_json_line(m: &ChatMessage, received_at: u64) -> String {
    kind_json_line(m, "public", None, None, Some(received_at))
}

/// A message as one JSON line: `{"chat","kind","from":"0x04…","text","clock","timestamp",
/// "received_at","message_id"}` (`timestamp`: the sender's clock, `received_at`: ours, both ms
/// since the Unix epoch; `received_at` is left out where it is not known: a message stored
/// before hush kept receive times, in a history reply or shown again after a restart; `kind` = `public` | `dm` | `group`; a group line also
/// has `name`, the group's name). Lines answering a command carry `"reply"` first (e.g.
/// `"history"`), so a reader can tell them from messages as they arrive.
pub fn kind_json_line(
    m: &ChatMessage,
    kind: &str,
    name: Option<&str>,
    reply: Option<&str>,
    received_at: Option<u64>,
) -> String {
    let line = MessageLine {
        reply,
        chat: &m.chat,
        kind,
        name,
        from: key_hex(&m.from),
        text: &m.text,
        clock: m.clock,
        timestamp: m.timestamp_ms,
        received_at,
        message_id: format!("0x{}", hex::encode(m.message_id)),
    };
    // Serialising a struct of strings and integers cannot fail.
    serde_json::to_string(&line).unwrap_or_default()
}

/// A command's answer as one JSON line: `{"reply": what, ..fields}`.
pub fn reply_json_line(what: &str, fields: &[(&str, &str)]) -> String {
    let mut map = serde_json::Map::new();
    map.insert("reply".into(), what.into());
    for (k, v) in fields {
        map.insert((*k).into(), (*v).into());
    }
    serde_json::Value::Object(map).to_string()
}

/// The `messages.jsonl` record of a message accepted at `received_at` (ms since the Unix
/// epoch, our clock): the stdout JSON fields without `kind`.
pub fn persist_json_line(m: &ChatMessage, received_at: u64) -> String {
    let line = PersistLine {
        chat: &m.chat,
        from: key_hex(&m.from),
        text: &m.text,
        clock: m.clock,
        timestamp: m.timestamp_ms,
        received_at,
        message_id: format!("0x{}", hex::encode(m.message_id)),
    };
    serde_json::to_string(&line).unwrap_or_default()
}

/// `#chat <0x04abcd…> text`: the author abbreviated to its first 4 key bytes after the 0x04.
pub fn message_human_line(m: &ChatMessage) -> String {
    kind_human_line(m, "#", &m.chat)
}

/// A human-readable line: `PREFIX` + `label` (`#` + public name, `@` + key, `%` + group
/// name), then the author and the text on one line.
pub fn kind_human_line(m: &ChatMessage, prefix: &str, label: &str) -> String {
    let short: String = hex::encode(m.from.get(1..5).unwrap_or_default());
    let text = m.text.replace(['\n', '\r'], " ");
    format!("{prefix}{label} <0x04{short}…> {text}")
}

/// The stderr line for an event other than `MessageReceived` (which goes to stdout).
pub fn status_line(event: &Event) -> Option<String> {
    match event {
        Event::PeerConnected {
            conn,
            remote,
            client_id,
        } => Some(format!(
            "{PEER_CONNECTED_PREFIX} conn={conn} key={} client={client_id:?}",
            hex::encode(remote)
        )),
        Event::PeerDisconnected { conn, reason } => Some(format!(
            "hush: peer disconnected conn={conn} reason={reason:?}"
        )),
        Event::MessageSent(m) => Some(format!(
            "hush: sent #{} clock={} {:?}",
            m.chat, m.clock, m.text
        )),
        Event::MessageReceived(_) => None,
        Event::HistoryRequestSent { conn, request_id } => Some(format!(
            "{HISTORY_SENT_PREFIX} conn={conn} id={}",
            hex::encode(request_id)
        )),
        Event::HistoryRequestCompleted {
            conn,
            request_id,
            error,
            more,
        } => Some(match error {
            None => format!(
                "{HISTORY_DONE_PREFIX} conn={conn} id={} more={more}",
                hex::encode(request_id)
            ),
            Some(e) => format!(
                "{HISTORY_FAILED_PREFIX} conn={conn} id={} error={e:?}",
                hex::encode(request_id)
            ),
        }),
        other => Some(format!("hush: event {other:?}")),
    }
}

#[cfg(test)]
mod tests;
