//! Which application-layer form ([`PayloadFormat`]) hush sends in each chat.
//!
//! Contract:
//! - A node-wide [`FormatSetting`] (`ConversationsConfig::payload_format`, `hush node
//!   --payload-format`, the simulator's `[node] payload_format`) can be overridden per chat
//!   ([`FormatPolicy::set_override`]). `transit` and `protobuf` are fixed; `auto` answers each
//!   chat in the form last *received* in it (1:1: the contact's last message; group: the last
//!   message or update from a member; public: the last message from anyone) and sends Transit
//!   before anything was received. Receiving accepts both forms whatever the setting.
//! - Why `auto` is the default: in December 2019 both eras were live and neither reads the
//!   other's form (v0.36.0 and status-react drop protobuf, 4c0d8de drops Transit). Replying in
//!   the form the other side just used always reaches it; starting in Transit reaches the
//!   clients that were the bulk of the network until the Status v1 app (January 2020).
//! - Entries are bounded by [`FormatPolicy::new`]'s limit; when full, new chats are not
//!   tracked (they get the node-wide setting, `auto` → Transit) and overrides are refused.
//!   Every change the caller must persist is returned as a [`ChatFormat`] (upsert by chat).

use std::collections::BTreeMap;

use super::app::PayloadFormat;

/// The node-wide or per-chat choice of payload form.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum FormatSetting {
    /// Always Transit (status-go ≤ v0.36.0, status-react).
    Transit,
    /// Always protobuf (status-go ≥ 0.36.2).
    Protobuf,
    /// The form last received in the chat; Transit before that.
    #[default]
    Auto,
}

impl FormatSetting {
    /// Parses `transit`, `protobuf` or `auto`.
    pub fn parse(s: &str) -> Option<FormatSetting> {
        match s {
            "transit" => Some(FormatSetting::Transit),
            "protobuf" => Some(FormatSetting::Protobuf),
            "auto" => Some(FormatSetting::Auto),
            _ => None,
        }
    }

    /// `transit`, `protobuf` or `auto`.
    pub fn as_str(self) -> &'static str {
        match self {
            FormatSetting::Transit => "transit",
            FormatSetting::Protobuf => "protobuf",
            FormatSetting::Auto => "auto",
        }
    }
}

/// The kind of a chat (its id space: a public chat may be named like a 1:1 chat id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChatKind {
    /// A public chat (id = its name).
    Public,
    /// A 1:1 chat (id = `"0x" + pubhex` of the other party).
    Direct,
    /// A private group (id = group chat id).
    Group,
}

impl ChatKind {
    /// 0, 1, 2 (the persisted form).
    pub fn to_u8(self) -> u8 {
        match self {
            ChatKind::Public => 0,
            ChatKind::Direct => 1,
            ChatKind::Group => 2,
        }
    }

    /// Inverse of [`ChatKind::to_u8`].
    pub fn from_u8(v: u8) -> Option<ChatKind> {
        match v {
            0 => Some(ChatKind::Public),
            1 => Some(ChatKind::Direct),
            2 => Some(ChatKind::Group),
            _ => None,
        }
    }
}

/// What is known of one chat's form (the persisted record).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatFormat {
    /// Kind of chat.
    pub kind: ChatKind,
    /// Chat id.
    pub chat: String,
    /// Per-chat override of the node-wide setting.
    pub setting: Option<FormatSetting>,
    /// Form of the last payload received in the chat.
    pub observed: Option<PayloadFormat>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Entry {
    setting: Option<FormatSetting>,
    observed: Option<PayloadFormat>,
}

/// Per-chat form state (see the module contract).
#[derive(Clone, Debug)]
pub struct FormatPolicy {
    default: FormatSetting,
    max_entries: usize,
    entries: BTreeMap<(ChatKind, String), Entry>,
}

/// The limit was reached: the override was not recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyFull;

impl FormatPolicy {
    /// A policy with node-wide `default`, tracking at most `max_entries` chats.
    pub fn new(default: FormatSetting, max_entries: usize) -> FormatPolicy {
        FormatPolicy {
            default,
            max_entries,
            entries: BTreeMap::new(),
        }
    }

    /// The node-wide setting.
    pub fn default_setting(&self) -> FormatSetting {
        self.default
    }

    /// The setting in force for a chat (override, else node-wide).
    pub fn setting(&self, kind: ChatKind, chat: &str) -> FormatSetting {
        self.entry(kind, chat)
            .and_then(|e| e.setting)
            .unwrap_or(self.default)
    }

    /// The form to send in a chat now.
    pub fn format(&self, kind: ChatKind, chat: &str) -> PayloadFormat {
        let e = self.entry(kind, chat);
        match e.and_then(|e| e.setting).unwrap_or(self.default) {
            FormatSetting::Transit => PayloadFormat::Transit,
            FormatSetting::Protobuf => PayloadFormat::Protobuf,
            FormatSetting::Auto => e.and_then(|e| e.observed).unwrap_or_default(),
        }
    }

    /// Notes the form of a payload received in a chat; returns the record to persist when
    /// it changed what is known (nothing when the chat cannot be tracked: limit reached).
    pub fn observe(
        &mut self,
        kind: ChatKind,
        chat: &str,
        format: PayloadFormat,
    ) -> Option<ChatFormat> {
        let key = (kind, chat.to_string());
        if !self.entries.contains_key(&key) && self.entries.len() >= self.max_entries {
            return None;
        }
        let e = self.entries.entry(key).or_default();
        if e.observed == Some(format) {
            return None;
        }
        e.observed = Some(format);
        let e = *e;
        Some(Self::record(kind, chat, e))
    }

    /// Sets (or with `None` clears) a chat's override; returns the record to persist.
    pub fn set_override(
        &mut self,
        kind: ChatKind,
        chat: &str,
        setting: Option<FormatSetting>,
    ) -> Result<ChatFormat, PolicyFull> {
        let key = (kind, chat.to_string());
        if !self.entries.contains_key(&key) && self.entries.len() >= self.max_entries {
            return Err(PolicyFull);
        }
        let e = self.entries.entry(key).or_default();
        e.setting = setting;
        let e = *e;
        Ok(Self::record(kind, chat, e))
    }

    /// Replays a persisted record (restart); beyond the limit it is ignored.
    pub fn restore(&mut self, r: &ChatFormat) {
        let key = (r.kind, r.chat.clone());
        if !self.entries.contains_key(&key) && self.entries.len() >= self.max_entries {
            return;
        }
        self.entries.insert(
            key,
            Entry {
                setting: r.setting,
                observed: r.observed,
            },
        );
    }

    fn entry(&self, kind: ChatKind, chat: &str) -> Option<&Entry> {
        self.entries.get(&(kind, chat.to_string()))
    }

    fn record(kind: ChatKind, chat: &str, e: Entry) -> ChatFormat {
        ChatFormat {
            kind,
            chat: chat.to_string(),
            setting: e.setting,
            observed: e.observed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_answers_in_the_form_last_received_and_overrides_win() {
        let mut p = FormatPolicy::new(FormatSetting::Auto, 2);
        assert_eq!(p.format(ChatKind::Direct, "a"), PayloadFormat::Transit);
        let r = p
            .observe(ChatKind::Direct, "a", PayloadFormat::Protobuf)
            .unwrap();
        assert_eq!(r.observed, Some(PayloadFormat::Protobuf));
        assert_eq!(p.format(ChatKind::Direct, "a"), PayloadFormat::Protobuf);
        // Same observation again: nothing to persist. Another kind, same id: separate.
        assert!(p
            .observe(ChatKind::Direct, "a", PayloadFormat::Protobuf)
            .is_none());
        assert_eq!(p.format(ChatKind::Public, "a"), PayloadFormat::Transit);
        let r = p
            .set_override(ChatKind::Direct, "a", Some(FormatSetting::Transit))
            .unwrap();
        assert_eq!(p.format(ChatKind::Direct, "a"), PayloadFormat::Transit);
        // Restore gives the same answers; the limit refuses a third chat.
        let mut q = FormatPolicy::new(FormatSetting::Auto, 2);
        q.restore(&r);
        assert_eq!(q.format(ChatKind::Direct, "a"), PayloadFormat::Transit);
        assert_eq!(q.setting(ChatKind::Direct, "a"), FormatSetting::Transit);
        p.set_override(ChatKind::Group, "g", Some(FormatSetting::Protobuf))
            .unwrap();
        assert_eq!(
            p.set_override(ChatKind::Public, "x", Some(FormatSetting::Protobuf)),
            Err(PolicyFull)
        );
        assert!(p
            .observe(ChatKind::Public, "x", PayloadFormat::Protobuf)
            .is_none());
        assert_eq!(p.format(ChatKind::Public, "x"), PayloadFormat::Transit);
        // A fixed node-wide setting ignores what was received.
        let mut f = FormatPolicy::new(FormatSetting::Protobuf, 4);
        f.observe(ChatKind::Direct, "a", PayloadFormat::Transit);
        assert_eq!(f.format(ChatKind::Direct, "a"), PayloadFormat::Protobuf);
        assert_eq!(FormatSetting::parse("auto"), Some(FormatSetting::Auto));
        assert_eq!(FormatSetting::parse("json"), None);
    }
}
