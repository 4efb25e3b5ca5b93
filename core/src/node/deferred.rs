//! Public posts that wait for room in the Whisper pool.
//!
//! Contract: a `/send` the node accepted is never lost to its own pool. When the pool has no
//! room (every place holds an envelope that outlives the post, or our own post a peer still
//! awaits: [`crate::whisper::WhisperError::PoolFull`]), the post waits here, in order, and
//! later sends queue behind it; each [`Node::handle_timeout`] (after Whisper's broadcast and
//! expiry, which free places) posts as many as now fit. [`Node::input_congested`] tells the
//! driver to stop taking input meanwhile, so the queue stays short; past
//! [`super::NodeConfig::max_deferred_posts`] a send is refused with [`NodeError::Busy`].
//! The queue is not persisted: a post is durable once pooled ([`super::Persist::OwnEnvelope`]).

use super::{Node, NodeError};
use crate::whisper::WhisperError;
use crate::Time;

/// Public posts kept while the pool is full (a few seconds of piped input).
pub const DEFAULT_MAX_DEFERRED_POSTS: usize = 1_000;

/// One `/send` waiting for room.
#[derive(Clone, Debug)]
pub(super) struct DeferredPost {
    chat: String,
    text: String,
}

impl Node {
    /// Sends `text` to public chat `chat`: posted now, or queued behind earlier posts that
    /// wait for room (module docs).
    pub(super) fn send_public(
        &mut self,
        now: Time,
        chat: &str,
        text: &str,
    ) -> Result<(), NodeError> {
        // A bad chat name is refused now, not when the queued send is retried.
        self.join(chat)?;
        if self.deferred_posts.is_empty() {
            match self.post_public(now, chat, text) {
                Err(NodeError::Whisper(WhisperError::PoolFull)) => {}
                other => return other,
            }
        }
        let max = self.config.max_deferred_posts;
        if self.deferred_posts.len() >= max {
            return Err(NodeError::Busy { max });
        }
        self.stats.posts_deferred += 1;
        self.deferred_posts.push_back(DeferredPost {
            chat: chat.to_string(),
            text: text.to_string(),
        });
        Ok(())
    }

    /// Posts the waiting sends that fit now, oldest first.
    pub(super) fn retry_deferred_posts(&mut self, now: Time) {
        while let Some(p) = self.deferred_posts.front().cloned() {
            match self.post_public(now, &p.chat, &p.text) {
                Err(NodeError::Whisper(WhisperError::PoolFull)) => return,
                Ok(()) => {}
                Err(e) => {
                    self.stats.deferred_posts_failed += 1;
                    crate::log_drop!("node", "deferred_post_failed", e);
                }
            }
            self.deferred_posts.pop_front();
        }
    }

    /// True while sends wait for room in the pool: the driver should take no more input
    /// until it is false again (it changes only in [`Node::handle_timeout`]).
    #[must_use]
    pub fn input_congested(&self) -> bool {
        !self.deferred_posts.is_empty()
    }

    /// Public posts waiting for room.
    #[must_use]
    pub fn deferred_posts(&self) -> usize {
        self.deferred_posts.len()
    }
}
