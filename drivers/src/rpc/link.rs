//! The driver loop's side of the RPC server: runs each [`RpcCall`] on the stack and routes
//! subscription messages ([`Event::ShhMessage`](hush_core::node::Event)) to the WebSocket
//! connection that subscribed.
//!
//! Contract: a subscription's queue that is full is closed (its connection is then closed as a
//! slow consumer and its subscriptions removed); one that is gone is forgotten.

use std::collections::BTreeMap;
use std::sync::Arc;

use hush_core::node::{ShhRequest, ShhResponse};
use hush_core::whisper::api::PushedMessage;
use hush_core::Time;
use smol::channel::{Sender, TrySendError};

use super::{RpcCall, RpcCounters};
use crate::driver::Stack;

/// Subscriptions by id, and the server's counters.
#[derive(Default)]
pub struct RpcRouter {
    subscriptions: BTreeMap<String, Sender<PushedMessage>>,
    counters: Option<Arc<RpcCounters>>,
    /// Messages for a subscription whose connection is gone.
    orphan_notifications: u64,
    /// Subscription queues found full (each closes its connection).
    queues_overflowed: u64,
}

impl RpcRouter {
    /// A router reporting `counters` (the server's) in `/stats`.
    pub fn new(counters: Option<Arc<RpcCounters>>) -> RpcRouter {
        RpcRouter {
            counters,
            ..RpcRouter::default()
        }
    }

    /// Runs one call on the stack and sends the answer back.
    pub fn handle_call<S: Stack>(&mut self, stack: &mut S, now: Time, call: RpcCall) {
        let unsubscribed = match &call.request {
            ShhRequest::Unsubscribe(id) => Some(id.clone()),
            _ => None,
        };
        let result = stack.handle_shh(now, call.request);
        if let (Ok(ShhResponse::Text(id)), Some(sink)) = (&result, call.subscriber) {
            self.subscriptions.insert(id.clone(), sink);
        }
        if let Some(id) = unsubscribed {
            self.subscriptions.remove(&id);
        }
        // The caller may be gone (its connection closed): nothing to tell then.
        let _ = call.reply.try_send(result);
    }

    /// Queues a subscription message for its connection.
    pub fn route(&mut self, pushed: PushedMessage) {
        let Some(sink) = self.subscriptions.get(&pushed.filter) else {
            self.orphan_notifications += 1;
            return;
        };
        match sink.try_send(pushed) {
            Ok(()) => {}
            Err(TrySendError::Full(p)) => {
                self.queues_overflowed += 1;
                sink.close();
                self.subscriptions.remove(&p.filter);
            }
            Err(TrySendError::Closed(p)) => {
                self.orphan_notifications += 1;
                self.subscriptions.remove(&p.filter);
            }
        }
    }

    /// Counters for `/stats` (layer `rpc`).
    pub fn stats(&self) -> Vec<(String, u64)> {
        let mut out = match &self.counters {
            Some(c) => c.list(),
            None => return Vec::new(),
        };
        out.push(("rpc.subscriptions".into(), self.subscriptions.len() as u64));
        out.push(("rpc.orphan_notifications".into(), self.orphan_notifications));
        out.push(("rpc.queues_overflowed".into(), self.queues_overflowed));
        out
    }
}
