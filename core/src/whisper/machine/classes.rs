//! Traffic counted per class of topics: a measurement aid, not protocol.
//!
//! Contract: the caller names which topics belong to which class ([`TopicClasses`], at most
//! [`MAX_TOPIC_CLASSES`] classes; a topic not named belongs to none) with
//! [`Whisper::set_topic_classes`]. Every envelope received from a peer then counts one
//! `received` in its topic's class, and every envelope newly pooled (own posts included, as in
//! [`Stats::envelopes_pooled`]) one `pooled`. A relay cannot tell a contact code from a chat
//! message by itself (topics are opaque hashes), so whoever knows the topics (the simulator)
//! says: its "duplicate factor per message kind" is `received / pooled` per class.

use super::*;
use std::sync::Arc;

/// Classes of topics counted separately (indexes `0..MAX_TOPIC_CLASSES`).
pub const MAX_TOPIC_CLASSES: usize = 4;

/// Which class each named topic belongs to; shared (one map for every node of a simulation).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicClasses(Arc<BTreeMap<Topic, u8>>);

impl TopicClasses {
    /// Classes from `(topic, class)` pairs; a class `>= MAX_TOPIC_CLASSES` is ignored, and a
    /// topic named twice keeps its first class.
    pub fn new(pairs: impl IntoIterator<Item = (Topic, u8)>) -> TopicClasses {
        let mut map = BTreeMap::new();
        for (t, c) in pairs {
            if usize::from(c) < MAX_TOPIC_CLASSES {
                map.entry(t).or_insert(c);
            }
        }
        TopicClasses(Arc::new(map))
    }

    /// The class of `topic`, if it has one.
    pub fn class(&self, topic: &Topic) -> Option<usize> {
        if self.0.is_empty() {
            return None;
        }
        self.0.get(topic).map(|c| usize::from(*c))
    }
}

/// Envelopes of one class of topics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassCount {
    /// Copies received from peers.
    pub received: u64,
    /// Envelopes newly pooled (own posts included).
    pub pooled: u64,
}

impl Whisper {
    /// Counts traffic per class of `classes` from now on (earlier counts are kept).
    pub fn set_topic_classes(&mut self, classes: TopicClasses) {
        self.topic_classes = classes;
    }

    /// Envelopes counted per class, by class index.
    pub fn class_counts(&self) -> &[ClassCount; MAX_TOPIC_CLASSES] {
        &self.class_counts
    }

    pub(super) fn count_class_received(&mut self, topic: &Topic) {
        if let Some(c) = self.topic_classes.class(topic) {
            if let Some(n) = self.class_counts.get_mut(c) {
                n.received += 1;
            }
        }
    }

    pub(super) fn count_class_pooled(&mut self, topic: &Topic) {
        if let Some(c) = self.topic_classes.class(topic) {
            if let Some(n) = self.class_counts.get_mut(c) {
                n.pooled += 1;
            }
        }
    }
}
