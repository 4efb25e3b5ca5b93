//! The node's counter listing for `/stats`: [`NodeStats`] and every layer's `Stats`, as
//! `layer.name` ([`crate::stats`]), and the debug log of drops inside the conversation layers.
//!
//! Layers: `p2p` (sessions, peer manager), `whisper`, `security`, `mvds`, `chat` (1:1, groups,
//! public chats), `node` (the wiring itself). Drops inside the security and chat layers of a
//! 1:1/group payload are logged here, with the hash of the Whisper envelope that carried it —
//! the only id known before decryption: while the `hush::drop` target is enabled at debug
//! level, the node compares those layers' counters before and after
//! [`Conversations::handle_incoming`](crate::chat::direct::Conversations::handle_incoming)
//! and logs each drop counter that grew. One site covers every reason those layers count,
//! including reasons added later; MVDS logs its own drops with the message id.

use secp256k1::PublicKey;

use super::{Node, NodeStats};
use crate::chat::direct::Via;
use crate::stats::{extend_prefixed, list, Counters, Hex, DROP_LOG_TARGET};
use crate::whisper::ReceivedMessage;

/// Order of the layers in [`Node::counters`].
const LAYERS: [&str; 6] = ["p2p", "whisper", "security", "mvds", "chat", "node"];

/// Conversation counters the drop diff does not log: outcomes, not drops, and
/// `chat.group_held_dropped`, which the conversations log themselves with the message id
/// when a hold ends (not during the envelope that happens to be in hand).
const CONVERSATION_NOT_DROPS: [&str; 7] = [
    "security.decrypted",
    "security.decrypted_dh_only",
    "security.bundles_only",
    "security.public_messages",
    "chat.group_held",
    "chat.group_released",
    "chat.group_held_dropped",
];

fn map_counters<K: Ord>(
    map: &std::collections::BTreeMap<K, u64>,
    label: impl Fn(&K) -> &'static str,
) -> Counters {
    map.iter().map(|(k, v)| (label(k).to_owned(), *v)).collect()
}

impl NodeStats {
    /// Every counter as `layer.name` (the node keeps counters of several layers: session ends
    /// for `p2p`, Whisper's peer faults, public-chat rejections for `chat`).
    pub fn counters(&self) -> Counters {
        let mut out = Counters::new();
        let mut p2p = list([
            ("sessions_closed", self.sessions_closed),
            ("connections_refused", self.connections_refused),
            ("base_messages_ignored", self.base_messages_ignored),
        ]);
        extend_prefixed(
            &mut p2p,
            "disconnects_sent",
            map_counters(&self.disconnects_sent, |r| r.label()),
        );
        extend_prefixed(
            &mut p2p,
            "disconnects_received",
            map_counters(&self.disconnects_received, |r| r.label()),
        );
        extend_prefixed(
            &mut p2p,
            "peer_faults",
            map_counters(&self.peer_faults, |f| f.label()),
        );
        extend_prefixed(&mut p2p, "peers", self.peers.counters());
        extend_prefixed(&mut out, "p2p", p2p);

        let mut whisper = list([("batches_acknowledged", self.batches_acknowledged)]);
        extend_prefixed(
            &mut whisper,
            "whisper_peer_faults",
            map_counters(&self.whisper_peer_faults, |l| l),
        );
        extend_prefixed(&mut out, "whisper", whisper);

        let chat = list([
            ("messages_received", self.messages_received),
            ("duplicates_dropped", self.duplicates_dropped),
            ("messages_rejected", self.messages_rejected),
            ("public_unsigned", self.public_unsigned),
            ("public_undecodable", self.public_undecodable),
            (
                "public_undecodable_protobuf",
                self.public_undecodable_protobuf,
            ),
            (
                "public_bad_wrapper_signature",
                self.public_bad_wrapper_signature,
            ),
            ("public_bundles_rejected", self.public_bundles_rejected),
            ("public_not_a_message", self.public_not_a_message),
            ("public_wrong_chat", self.public_wrong_chat),
            ("public_unsafe_clock", self.public_unsafe_clock),
            ("public_not_joined", self.public_not_joined),
            ("conversation_events", self.conversation_events),
        ]);
        extend_prefixed(&mut out, "chat", chat);

        let node = list([
            ("sends_to_gone_peers", self.sends_to_gone_peers),
            ("history_pages_completed", self.history_pages_completed),
            ("unsigned_dropped", self.unsigned_dropped),
            ("conversation_posts_failed", self.conversation_posts_failed),
            (
                "conversation_filters_failed",
                self.conversation_filters_failed,
            ),
            (
                "bytes_for_unknown_connections",
                self.bytes_for_unknown_connections,
            ),
            ("posts_deferred", self.posts_deferred),
            ("deferred_posts_failed", self.deferred_posts_failed),
            (
                "deliveries_for_removed_filters",
                self.deliveries_for_removed_filters,
            ),
        ]);
        extend_prefixed(&mut out, "node", node);
        out
    }
}

impl Node {
    /// Every counter of every layer as `layer.name`, layers in stack order (see the module
    /// docs): what `/stats` prints.
    pub fn counters(&self) -> Counters {
        let mut out = self.stats.counters();
        out.push(("p2p.connections".to_owned(), self.connection_count() as u64));
        extend_prefixed(&mut out, "whisper", self.whisper.stats().counters());
        out.extend(
            self.shh
                .counters()
                .into_iter()
                .map(|(k, v)| (format!("whisper.api_{k}"), v)),
        );
        out.extend(self.conversation_counters());
        extend_prefixed(
            &mut out,
            "mvds",
            self.conversations.mvds().stats().counters(),
        );
        let rank = |name: &str| {
            let layer = name.split('.').next().unwrap_or_default();
            LAYERS
                .iter()
                .position(|l| *l == layer)
                .unwrap_or(LAYERS.len())
        };
        out.sort_by_key(|(name, _)| rank(name));
        out
    }

    /// The security and chat counters of the conversation layers, as `layer.name`.
    fn conversation_counters(&self) -> Counters {
        let mut out = Counters::new();
        extend_prefixed(
            &mut out,
            "security",
            self.conversations.security().stats().counters(),
        );
        extend_prefixed(&mut out, "chat", self.conversations.stats().counters());
        out
    }

    /// A signed payload on a conversation topic: to the conversations, logging the drops it
    /// caused there with the envelope hash (see the module docs).
    pub(super) fn conversation_incoming(
        &mut self,
        now: crate::Time,
        signer: &PublicKey,
        message: &ReceivedMessage,
        via: Via,
    ) {
        let before = tracing::enabled!(target: DROP_LOG_TARGET, tracing::Level::DEBUG)
            .then(|| self.conversation_counters());
        self.conversations
            .handle_incoming(now, signer, &message.payload, via);
        let Some(before) = before else {
            return;
        };
        for ((name, old), (_, new)) in before.iter().zip(self.conversation_counters()) {
            let dropped = new > *old && !CONVERSATION_NOT_DROPS.contains(&name.as_str());
            if dropped {
                let (layer, reason) = name.split_once('.').unwrap_or(("chat", name));
                crate::log_drop!(layer, reason, Hex(&message.envelope_hash));
            }
        }
    }
}
