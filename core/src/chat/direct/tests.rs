//! Tests of [`Conversations`] over an in-test "network": Posts are routed by topic to the
//! nodes that listen to it (asymmetric posts only to the key holder), with a seeded schedule
//! of delay (reordering), loss, duplication and crashes at action boundaries.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use prost::Message as _;
use rand_core::RngCore;

use super::*;
use crate::chat::group::member_id;
use crate::mvds::Retransmission;
use crate::rng::{child_seed, seed_from_u64, Rng};
use crate::security::proto::ProtocolMessage;

pub(crate) const T0: Time = Time(1_700_000_000_000);

pub(crate) fn key(i: u64) -> SecretKey {
    let mut rng = rng_from_seed(seed_from_u64(1000 + i));
    crate::ecies::random_secret_key(&mut rng)
}

/// One device in the test network.
pub(crate) struct Node {
    pub(crate) conv: Option<Conversations>,
    pub(crate) identity: SecretKey,
    pub(crate) installation: String,
    pub(crate) config: ConversationsConfig,
    /// Committed records, encoded as the driver stores them.
    pub(crate) records: Vec<Vec<u8>>,
    /// Everything delivered to the app, across restarts.
    pub(crate) events: Vec<ChatEvent>,
    pub(crate) listens: Vec<Listen>,
    pub(crate) restarts: u64,
}

impl Node {
    pub(crate) fn conv(&mut self) -> &mut Conversations {
        self.conv.as_mut().expect("node alive")
    }

    pub(crate) fn public(&self) -> PublicKey {
        public_key(&self.identity)
    }

    /// Messages delivered (direct and group).
    pub(crate) fn messages(&self) -> Vec<ChatMessage> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ChatEvent::Direct(m) => Some(m.clone()),
                ChatEvent::Group { message, .. } => Some(message.clone()),
                ChatEvent::GroupUpdated { .. } => None,
            })
            .collect()
    }

    /// History from the committed records.
    pub(crate) fn history(&self) -> Vec<StoredMessage> {
        self.records
            .iter()
            .flat_map(|r| Record::decode(r).expect("record decodes").flatten())
            .filter_map(|r| match r {
                Record::Message(m) => Some(m),
                _ => None,
            })
            .collect()
    }
}

#[derive(Clone)]
struct Flight {
    at: Time,
    seq: u64,
    to: usize,
    from: PublicKey,
    payload: Vec<u8>,
    via: Via,
}

/// A post as seen on the wire.
#[derive(Clone, Debug)]
pub(crate) struct Posted {
    pub(crate) sender: usize,
    pub(crate) topic: Topic,
    pub(crate) encryption: Encryption,
    pub(crate) payload: Vec<u8>,
}

pub(crate) struct Net {
    pub(crate) nodes: Vec<Node>,
    pub(crate) now: Time,
    rng: Rng,
    pub(crate) loss: f64,
    pub(crate) dup: f64,
    pub(crate) max_delay_ms: u64,
    /// Probability of a crash before each action is handled.
    pub(crate) kill_prob: f64,
    pub(crate) kills_left: u64,
    flights: Vec<Flight>,
    seq: u64,
    pub(crate) posts: Vec<Posted>,
    /// (sender installation, target installation, ratchet key, n) → ciphertext.
    message_keys: BTreeMap<(String, String, Vec<u8>, u32), Vec<u8>>,
}

fn chance(rng: &mut Rng, p: f64) -> bool {
    p > 0.0 && (rng.next_u64() as f64 / u64::MAX as f64) < p
}

impl Net {
    pub(crate) fn new(seed: u64) -> Net {
        Net {
            nodes: Vec::new(),
            now: T0,
            rng: rng_from_seed(seed_from_u64(seed)),
            loss: 0.0,
            dup: 0.0,
            max_delay_ms: 0,
            kill_prob: 0.0,
            kills_left: 0,
            flights: Vec::new(),
            seq: 0,
            posts: Vec::new(),
            message_keys: BTreeMap::new(),
        }
    }

    /// Adds a device of identity `identity_index`; returns its index.
    pub(crate) fn add(
        &mut self,
        identity_index: u64,
        installation: &str,
        config: ConversationsConfig,
    ) -> usize {
        let identity = key(identity_index);
        let seed = child_seed(&mut self.rng);
        let conv = Conversations::new(config.clone(), identity, installation, seed, self.now)
            .expect("new");
        let listens = conv.listen_topics();
        self.nodes.push(Node {
            conv: Some(conv),
            identity,
            installation: installation.to_string(),
            config,
            records: Vec::new(),
            events: Vec::new(),
            listens,
            restarts: 0,
        });
        self.nodes.len() - 1
    }

    pub(crate) fn pk(&self, i: usize) -> PublicKey {
        self.nodes[i].public()
    }

    /// Runs an app command on node `i` and drains its actions.
    pub(crate) fn with<T>(&mut self, i: usize, f: impl FnOnce(&mut Conversations, Time) -> T) -> T {
        let now = self.now;
        let out = f(self.nodes[i].conv(), now);
        self.drain(i, None);
        out
    }

    fn restart(&mut self, i: usize) {
        let seed = child_seed(&mut self.rng);
        let node = &mut self.nodes[i];
        node.conv = None;
        let records: Vec<Record> = node
            .records
            .iter()
            .map(|r| Record::decode(r).expect("record decodes"))
            .collect();
        let conv = Conversations::restore(
            node.config.clone(),
            node.identity,
            &node.installation,
            seed,
            self.now,
            records,
        )
        .expect("restore");
        node.listens = conv.listen_topics();
        node.conv = Some(conv);
        node.restarts += 1;
    }

    /// Handles node `i`'s actions; may crash it before any action (the rest are lost) and
    /// restore it from its records. A crash while handling `incoming` puts the envelope back
    /// (Whisper keeps envelopes for their TTL; a restarted node receives them again).
    fn drain(&mut self, i: usize, incoming: Option<Flight>) {
        loop {
            if self.kills_left > 0 && chance(&mut self.rng, self.kill_prob) {
                self.kills_left -= 1;
                self.restart(i);
                if let Some(mut f) = incoming.clone() {
                    f.at = self.now.plus_millis(1);
                    self.enqueue(f);
                }
                // The restored machine's own actions (re-posts, MVDS deliveries).
                return self.drain(i, None);
            }
            let Some(action) = self.nodes[i].conv().poll_action() else {
                return;
            };
            match action {
                Action::Persist(r) => {
                    let bytes = r.encode();
                    assert_eq!(Record::decode(&bytes).as_ref(), Ok(&r), "record round trip");
                    self.nodes[i].records.push(bytes);
                }
                Action::Deliver(e) => self.nodes[i].events.push(e),
                Action::ListenChanged => {
                    self.nodes[i].listens = self.nodes[i].conv().listen_topics();
                }
                Action::Post {
                    topic,
                    encryption,
                    payload,
                } => self.route(i, topic, encryption, payload),
            }
        }
    }

    fn check_keys(&mut self, payload: &[u8]) {
        let Ok(pm) = ProtocolMessage::decode(payload) else {
            return;
        };
        for (target, dm) in &pm.direct_message {
            let (k, n) = match (&dm.dr_header, &dm.dh_header) {
                (Some(h), _) => (h.key.clone(), h.n),
                (None, Some(h)) => (h.key.clone(), u32::MAX),
                _ => continue,
            };
            let id = (pm.installation_id.clone(), target.clone(), k, n);
            match self.message_keys.get(&id) {
                Some(prev) => assert_eq!(prev, &dm.payload, "message key reused"),
                None => {
                    self.message_keys.insert(id, dm.payload.clone());
                }
            }
        }
    }

    fn route(&mut self, sender: usize, topic: Topic, encryption: Encryption, payload: Vec<u8>) {
        self.check_keys(&payload);
        self.posts.push(Posted {
            sender,
            topic,
            encryption: encryption.clone(),
            payload: payload.clone(),
        });
        let from = self.pk(sender);
        for j in 0..self.nodes.len() {
            let node = &self.nodes[j];
            let via = node.listens.iter().find_map(|l| {
                let ok = l.topic == topic
                    && match (&l.kind, &encryption) {
                        (ListenKind::Asymmetric, Encryption::Asymmetric { to }) => {
                            *to == node.public()
                        }
                        (ListenKind::Symmetric { key: a }, Encryption::Symmetric { key: b }) => {
                            a == b
                        }
                        _ => false,
                    };
                ok.then_some(l.via)
            });
            let Some(via) = via else { continue };
            let copies = if chance(&mut self.rng, self.dup) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                if chance(&mut self.rng, self.loss) {
                    continue;
                }
                let delay = if self.max_delay_ms > 0 {
                    self.rng.next_u64() % self.max_delay_ms
                } else {
                    0
                };
                let f = Flight {
                    at: self.now.plus_millis(delay),
                    seq: 0,
                    to: j,
                    from,
                    payload: payload.clone(),
                    via,
                };
                self.enqueue(f);
            }
        }
    }

    fn enqueue(&mut self, mut f: Flight) {
        self.seq += 1;
        f.seq = self.seq;
        self.flights.push(f);
    }

    /// Runs the network until `end` (virtual time).
    pub(crate) fn run_until(&mut self, end: Time) {
        for _ in 0..2_000_000 {
            let next_flight = self
                .flights
                .iter()
                .enumerate()
                .min_by_key(|(_, f)| (f.at, f.seq))
                .map(|(i, f)| (i, f.at));
            let next_timer = self
                .nodes
                .iter()
                .filter_map(|n| n.conv.as_ref().and_then(|c| c.poll_timeout()))
                .min();
            let t = match (next_flight.map(|x| x.1), next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => break,
            };
            if t > end {
                break;
            }
            self.now = self.now.max(t);
            match next_flight {
                Some((idx, at)) if at <= self.now => {
                    let f = self.flights.swap_remove(idx);
                    let now = self.now;
                    self.nodes[f.to]
                        .conv()
                        .handle_incoming(now, &f.from, &f.payload, f.via);
                    let to = f.to;
                    self.drain(to, Some(f));
                }
                _ => {
                    for i in 0..self.nodes.len() {
                        let due = self.nodes[i]
                            .conv
                            .as_ref()
                            .and_then(|c| c.poll_timeout())
                            .is_some_and(|t| t <= self.now);
                        if due {
                            let now = self.now;
                            self.nodes[i].conv().handle_timeout(now);
                            self.drain(i, None);
                        }
                    }
                }
            }
        }
        self.now = self.now.max(end);
    }

    pub(crate) fn run_for(&mut self, ms: u64) {
        let end = self.now.plus_millis(ms);
        self.run_until(end);
    }
}

/// Asserts `node` received exactly the messages with `ids` (each once), and their clocks
/// order them as `ids` is ordered.
pub(crate) fn assert_exactly_once_in_order(node: &Node, ids: &[MessageId]) {
    let got = node.messages();
    let mut counts: BTreeMap<MessageId, usize> = BTreeMap::new();
    for m in &got {
        *counts.entry(m.message_id).or_default() += 1;
    }
    for id in ids {
        assert_eq!(
            counts.get(id).copied(),
            Some(1),
            "message {} delivered {:?} times",
            hex::encode(&id[..4]),
            counts.get(id)
        );
    }
    let expected: BTreeSet<MessageId> = ids.iter().copied().collect();
    for m in &got {
        assert!(expected.contains(&m.message_id), "unexpected message {m:?}");
    }
    let mut by_clock = got.clone();
    by_clock.sort_by_key(|m| (m.clock, m.message_id));
    let order: Vec<MessageId> = by_clock.iter().map(|m| m.message_id).collect();
    assert_eq!(order, ids, "clock order differs from send order");
}

fn lossy_config() -> ConversationsConfig {
    ConversationsConfig::default()
}

#[test]
fn direct_both_ways_exactly_once_in_clock_order() {
    let mut net = Net::new(1);
    net.dup = 0.3;
    net.max_delay_ms = 2_000;
    let a = net.add(1, "a1", lossy_config());
    let b = net.add(2, "b1", lossy_config());
    let (pa, pb) = (net.pk(a), net.pk(b));
    let mut to_b = Vec::new();
    let mut to_a = Vec::new();
    for round in 0..4 {
        for k in 0..3 {
            let text = format!("a{round}.{k}");
            to_b.push(net.with(a, |c, now| c.send_direct(now, &pb, &text).unwrap()));
            net.run_for(10);
        }
        net.run_for(5_000);
        for k in 0..3 {
            let text = format!("b{round}.{k}");
            to_a.push(net.with(b, |c, now| c.send_direct(now, &pa, &text).unwrap()));
            net.run_for(10);
        }
        net.run_for(5_000);
    }
    assert_exactly_once_in_order(&net.nodes[b], &to_b);
    assert_exactly_once_in_order(&net.nodes[a], &to_a);
    // Chat ids: the other party; authors right.
    for m in net.nodes[b].messages() {
        assert_eq!(m.chat, member_id(&pa));
        assert_eq!(m.from, pa.serialize_uncompressed());
    }
    // Lamport: every reply is later than everything it answers.
    let a_msgs = net.nodes[b].messages();
    let b_msgs = net.nodes[a].messages();
    let max_a_round0 = a_msgs.iter().take(3).map(|m| m.clock).max().unwrap();
    assert!(b_msgs.iter().all(|m| m.clock > max_a_round0));
    // History: every accepted message is in the records, once.
    let hist: Vec<MessageId> = net.nodes[b]
        .history()
        .iter()
        .map(|m| m.message.message_id)
        .collect();
    let unique: BTreeSet<_> = hist.iter().collect();
    assert_eq!(unique.len(), hist.len());
    assert_eq!(hist.len(), to_b.len() + to_a.len());
}

fn direct_parts(p: &Posted) -> Vec<(String, &'static str)> {
    let pm = ProtocolMessage::decode(p.payload.as_slice()).unwrap();
    pm.direct_message
        .iter()
        .map(|(k, v)| {
            let kind = if v.dh_header.is_some() {
                "dh"
            } else if v.x3dh_header.is_some() {
                "x3dh"
            } else {
                "dr"
            };
            (k.clone(), kind)
        })
        .collect()
}

#[test]
fn dh_only_first_contact_then_ratchet_and_negotiated_topic() {
    let mut net = Net::new(2);
    let a = net.add(1, "a1", ConversationsConfig::default());
    let b = net.add(2, "b1", ConversationsConfig::default());
    let (pa, pb) = (net.pk(a), net.pk(b));
    let secret = topics::negotiated_secret(&key(1), &pb);

    let m1 = net.with(a, |c, now| c.send_direct(now, &pb, "hello").unwrap());
    let first = net.posts.last().unwrap().clone();
    assert_eq!(first.sender, a);
    assert_eq!(first.topic, topics::partitioned_topic(&pb));
    assert_eq!(first.encryption, Encryption::Asymmetric { to: pb });
    assert_eq!(direct_parts(&first), vec![("none".to_string(), "dh")]);
    net.run_for(100);
    assert_eq!(net.nodes[b].messages().len(), 1);
    // B knows A's installation from the bundle and has the secret from A: agreed.
    assert!(net.nodes[b].conv().negotiated_agreed(net.now, &pa));

    let m2 = net.with(b, |c, now| c.send_direct(now, &pa, "hi").unwrap());
    let reply = net.posts.last().unwrap().clone();
    assert_eq!(reply.topic, topics::negotiated_topic(&secret));
    assert_eq!(
        reply.encryption,
        Encryption::Symmetric {
            key: topics::negotiated_key(&secret)
        }
    );
    assert_eq!(direct_parts(&reply), vec![("a1".to_string(), "x3dh")]);
    net.run_for(100);

    let m3 = net.with(a, |c, now| c.send_direct(now, &pb, "again").unwrap());
    let third = net.posts.last().unwrap().clone();
    assert_eq!(third.topic, topics::negotiated_topic(&secret));
    assert_eq!(direct_parts(&third), vec![("b1".to_string(), "dr")]);
    net.run_for(100);
    assert_exactly_once_in_order(&net.nodes[b], &[m1, m3]);
    assert_exactly_once_in_order(&net.nodes[a], &[m2]);
    assert_eq!(net.nodes[a].conv().security().sessions().count(), 1);
    assert_eq!(net.nodes[b].conv().security().sessions().count(), 1);
}

#[test]
fn contact_code_gives_x3dh_on_first_message() {
    let mut net = Net::new(3);
    let a = net.add(1, "a1", ConversationsConfig::default());
    let b = net.add(2, "b1", ConversationsConfig::default());
    let pb = net.pk(b);
    net.with(a, |c, now| c.add_contact(now, &pb).unwrap());
    net.run_for(100); // first timeout publishes contact codes
    let m = net.with(a, |c, now| c.send_direct(now, &pb, "hello").unwrap());
    let first = net.posts.last().unwrap().clone();
    assert_eq!(direct_parts(&first), vec![("b1".to_string(), "x3dh")]);
    net.run_for(100);
    assert_exactly_once_in_order(&net.nodes[b], &[m]);
}

#[test]
fn bare_and_wrapped_payloads_accepted() {
    let mut net = Net::new(4);
    let wrapped = ConversationsConfig {
        wrap_messages: true,
        ..Default::default()
    };
    let a = net.add(1, "a1", wrapped);
    let b = net.add(2, "b1", ConversationsConfig::default());
    let (pa, pb) = (net.pk(a), net.pk(b));
    let m1 = net.with(a, |c, now| c.send_direct(now, &pb, "wrapped").unwrap());
    net.run_for(100);
    let m2 = net.with(b, |c, now| c.send_direct(now, &pa, "bare").unwrap());
    net.run_for(100);
    assert_exactly_once_in_order(&net.nodes[b], &[m1]);
    assert_exactly_once_in_order(&net.nodes[a], &[m2]);
    // A raw (unencrypted) bare c4 on the partitioned topic is accepted too (status-go keeps
    // bytes that are not a ProtocolMessage).
    let c4 = C4Message {
        text: "raw".into(),
        content_type: CONTENT_TYPE_TEXT.into(),
        message_type: MessageType::UserMessage,
        clock: 1,
        timestamp_ms: net.now.as_millis(),
        content: C4Content {
            chat_id: member_id(&pb),
            text: "raw".into(),
            ..Default::default()
        },
    };
    let now = net.now;
    net.nodes[b]
        .conv()
        .handle_incoming(now, &pa, &c4.encode(), Via::Partitioned);
    net.drain(b, None);
    assert_eq!(net.nodes[b].messages().last().unwrap().text, "raw");
    // ...but not on a contact-code topic.
    let before = net.nodes[b].messages().len();
    let mut c4b = c4.clone();
    c4b.clock = 2;
    net.nodes[b]
        .conv()
        .handle_incoming(now, &pa, &c4b.encode(), Via::ContactCode);
    net.drain(b, None);
    assert_eq!(net.nodes[b].messages().len(), before);
}

#[test]
fn restart_from_records_loses_nothing_and_reuses_no_key() {
    for seed in 0..6u64 {
        let mut net = Net::new(100 + seed);
        net.dup = 0.2;
        net.max_delay_ms = 500;
        net.kill_prob = 0.08;
        net.kills_left = 12;
        let a = net.add(1, "a1", ConversationsConfig::default());
        let b = net.add(2, "b1", ConversationsConfig::default());
        let (pa, pb) = (net.pk(a), net.pk(b));
        for round in 0..6 {
            net.with(a, |c, now| {
                c.send_direct(now, &pb, &format!("a{round}")).unwrap()
            });
            net.run_for(1_000);
            net.with(b, |c, now| {
                c.send_direct(now, &pa, &format!("b{round}")).unwrap()
            });
            net.run_for(1_000);
        }
        net.run_for(5_000);
        assert!(
            net.nodes[a].restarts + net.nodes[b].restarts > 0,
            "seed {seed}: no crash"
        );
        // Sent = own messages in the sender's committed history (a command whose records were
        // never committed did not happen).
        for (s, r) in [(a, b), (b, a)] {
            let sent: Vec<MessageId> = net.nodes[s]
                .history()
                .iter()
                .filter(|m| m.message.from == net.pk(s).serialize_uncompressed())
                .map(|m| m.message.message_id)
                .collect();
            // The receiver's committed history holds every sent message exactly once, in
            // clock order (a crash between commit and Deliver leaves it in the history only:
            // the driver shows history from the store).
            let mut hist: Vec<StoredMessage> = net.nodes[r]
                .history()
                .into_iter()
                .filter(|m| m.message.from != net.pk(r).serialize_uncompressed())
                .collect();
            hist.sort_by_key(|m| (m.message.clock, m.message.message_id));
            let got: Vec<MessageId> = hist.iter().map(|m| m.message.message_id).collect();
            assert_eq!(
                got, sent,
                "seed {seed}: receiver history != sent, in clock order"
            );
            // Deliveries: never twice, never something not in the history.
            let delivered: Vec<MessageId> = net.nodes[r]
                .messages()
                .iter()
                .map(|m| m.message_id)
                .collect();
            let unique: BTreeSet<_> = delivered.iter().collect();
            assert_eq!(
                unique.len(),
                delivered.len(),
                "seed {seed}: delivered twice"
            );
            assert!(delivered.iter().all(|d| got.contains(d)));
        }
    }
}

fn mvds_config() -> ConversationsConfig {
    let mut c = ConversationsConfig {
        datasync: true,
        ..Default::default()
    };
    c.mvds.retransmission = Retransmission::Exponential {
        base_epochs: 2,
        cap_epochs: 16,
    };
    c
}

#[test]
fn mvds_under_half_loss_exactly_once() {
    let mut net = Net::new(5);
    net.loss = 0.5;
    net.dup = 0.2;
    net.max_delay_ms = 1_000;
    let a = net.add(1, "a1", mvds_config());
    let b = net.add(2, "b1", mvds_config());
    let (pa, pb) = (net.pk(a), net.pk(b));
    let mut to_b = Vec::new();
    let mut to_a = Vec::new();
    for k in 0..8 {
        to_b.push(net.with(a, |c, now| {
            c.send_direct(now, &pb, &format!("a{k}")).unwrap()
        }));
        net.run_for(200);
        to_a.push(net.with(b, |c, now| {
            c.send_direct(now, &pa, &format!("b{k}")).unwrap()
        }));
        net.run_for(200);
    }
    net.run_for(120_000);
    // Order by clock: interleaved sends may be concurrent, so check per sender.
    assert_exactly_once_in_order(&net.nodes[b], &to_b);
    assert_exactly_once_in_order(&net.nodes[a], &to_a);
    assert!(net.nodes[a].conv().mvds().stats().retransmissions > 0);
}

#[test]
fn mvds_with_crashes_exactly_once() {
    let mut net = Net::new(6);
    net.loss = 0.3;
    net.max_delay_ms = 500;
    net.kill_prob = 0.02;
    net.kills_left = 10;
    let a = net.add(1, "a1", mvds_config());
    let b = net.add(2, "b1", mvds_config());
    let pb = net.pk(b);
    for k in 0..10 {
        net.with(a, |c, now| {
            c.send_direct(now, &pb, &format!("a{k}")).unwrap()
        });
        net.run_for(300);
    }
    net.run_for(120_000);
    let sent: Vec<MessageId> = net.nodes[a]
        .history()
        .iter()
        .map(|m| m.message.message_id)
        .collect();
    assert!(!sent.is_empty());
    assert_exactly_once_in_order(&net.nodes[b], &sent);
}

#[test]
fn own_devices_get_synced_messages() {
    own_devices(false);
}

#[test]
fn own_devices_get_synced_messages_over_mvds() {
    own_devices(true);
}

fn own_devices(datasync: bool) {
    let mut net = Net::new(7);
    let cfg = ConversationsConfig {
        security: SecurityConfig {
            auto_enable_own_installations: true,
            ..Default::default()
        },
        datasync,
        ..Default::default()
    };
    let a1 = net.add(1, "a1", cfg.clone());
    let a2 = net.add(1, "a2", cfg.clone());
    let b = net.add(2, "b1", cfg);
    let (pa, pb) = (net.pk(a1), net.pk(b));
    // Contact codes on our own topic pair the devices.
    net.run_for(2_000);
    assert!(net.nodes[a1]
        .conv()
        .security()
        .installation(&pa, "a2")
        .is_some());
    let m1 = net.with(a1, |c, now| c.send_direct(now, &pb, "from a1").unwrap());
    net.run_for(2_000);
    assert_exactly_once_in_order(&net.nodes[b], &[m1]);
    // a2 sees its own message in the chat with b.
    let synced = net.nodes[a2].messages();
    assert_eq!(synced.len(), 1);
    assert_eq!(synced[0].chat, member_id(&pb));
    assert_eq!(synced[0].message_id, m1);
    // b's reply reaches both devices.
    let m2 = net.with(b, |c, now| c.send_direct(now, &pa, "to both").unwrap());
    net.run_for(2_000);
    assert_exactly_once_in_order(&net.nodes[a1], &[m2]);
    let a2_msgs: Vec<MessageId> = net.nodes[a2]
        .messages()
        .iter()
        .map(|m| m.message_id)
        .collect();
    assert_eq!(a2_msgs, vec![m1, m2]);
}

#[test]
fn caller_misuse_is_typed() {
    let mut net = Net::new(8);
    let a = net.add(1, "a1", ConversationsConfig::default());
    let pa = net.pk(a);
    let pb = public_key(&key(2));
    let big = "x".repeat(DEFAULT_MAX_TEXT_BYTES + 1);
    let c = net.nodes[a].conv();
    assert_eq!(
        c.send_direct(T0, &pa, "me"),
        Err(ConversationError::SendToSelf)
    );
    assert!(matches!(
        c.send_direct(T0, &pb, &big),
        Err(ConversationError::TextTooLong { .. })
    ));
    assert!(Conversations::new(ConversationsConfig::default(), key(1), "", [0; 32], T0).is_err());
}

#[test]
fn record_decode_rejects_garbage_and_nested_batches() {
    let inner = Record::Batch(vec![Record::Posted { id: [1; 32] }]);
    let outer = Record::Batch(vec![inner]);
    assert!(Record::decode(&outer.encode()).is_err());
    assert!(Record::decode(&[0xc0]).is_err());
    assert!(Record::decode(&[]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_into_handle_incoming_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        via in 0u8..4,
    ) {
        let mut c = Conversations::new(
            ConversationsConfig { datasync: true, ..Default::default() },
            key(1), "a1", [7; 32], T0,
        ).unwrap();
        let from = public_key(&key(2));
        let via = [Via::Partitioned, Via::Negotiated, Via::ContactCode, Via::Discovery][via as usize];
        c.handle_incoming(T0, &from, &bytes, via);
        while c.poll_action().is_some() {}
    }

    #[test]
    fn truncated_valid_payloads_never_panic(cut in 0usize..2000, flip in any::<u8>()) {
        let mut net = Net::new(9);
        let a = net.add(1, "a1", ConversationsConfig::default());
        let b = net.add(2, "b1", ConversationsConfig::default());
        let pb = net.pk(b);
        net.with(a, |c, now| c.send_direct(now, &pb, "hello there").unwrap());
        let post = net.posts.last().unwrap().payload.clone();
        let mut bytes = post[..cut.min(post.len())].to_vec();
        if let Some(x) = bytes.last_mut() { *x ^= flip; }
        let pa = net.pk(a);
        let now = net.now;
        net.nodes[b].conv().handle_incoming(now, &pa, &bytes, Via::Partitioned);
        while net.nodes[b].conv().poll_action().is_some() {}
    }

    #[test]
    fn record_decode_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Record::decode(&bytes);
    }
}

#[test]
fn record_truncations_are_errors() {
    let mut net = Net::new(10);
    let cfg = ConversationsConfig {
        datasync: true,
        ..Default::default()
    };
    let a = net.add(1, "a1", cfg.clone());
    let b = net.add(2, "b1", cfg);
    let pb = net.pk(b);
    net.with(a, |c, now| c.send_direct(now, &pb, "hello").unwrap());
    let gid = net.with(a, |c, now| c.create_group(now, "g", &[pb]).unwrap());
    net.with(a, |c, now| c.send_group(now, &gid, "to group").unwrap());
    net.run_for(2_000);
    let mut kinds = BTreeSet::new();
    for n in [a, b] {
        for bytes in &net.nodes[n].records {
            let full = Record::decode(bytes).unwrap();
            for r in full.clone().flatten() {
                let name = format!("{r:?}");
                kinds.insert(name.split(['(', ' ', '{']).next().unwrap_or("").to_string());
            }
            for cut in 0..bytes.len() {
                assert!(
                    Record::decode(&bytes[..cut]).is_err(),
                    "prefix {cut} decoded"
                );
            }
        }
    }
    // Security, MVDS, message, group, negotiated, contact-code records were exercised.
    assert!(kinds.len() >= 6, "{kinds:?}");
}

#[test]
fn unknown_device_answers_with_its_bundle() {
    let mut net = Net::new(11);
    let a = net.add(1, "a1", ConversationsConfig::default());
    let b1 = net.add(2, "b1", ConversationsConfig::default());
    let pb = net.pk(b1);
    net.with(a, |c, now| c.add_contact(now, &pb).unwrap());
    net.run_for(100); // a learns b1 from b1's contact code
    let b2 = net.add(2, "b2", ConversationsConfig::default());
    let m1 = net.with(a, |c, now| c.send_direct(now, &pb, "one").unwrap());
    net.run_for(100);
    // b2 had no part: it answered with a DH-only advertisement carrying its bundle.
    let adverts: Vec<&Posted> = net
        .posts
        .iter()
        .filter(|p| p.sender == b2 && p.topic == topics::partitioned_topic(&net.pk(a)))
        .collect();
    assert_eq!(adverts.len(), 1);
    assert_eq!(direct_parts(adverts[0]), vec![("none".to_string(), "dh")]);
    assert!(net.nodes[b2].messages().is_empty());
    // Now a sends to both devices of b.
    let m2 = net.with(a, |c, now| c.send_direct(now, &pb, "two").unwrap());
    net.run_for(100);
    assert_exactly_once_in_order(&net.nodes[b1], &[m1, m2]);
    assert_exactly_once_in_order(&net.nodes[b2], &[m2]);
}

#[test]
fn generic_discovery_for_first_contact_when_enabled() {
    let mut net = Net::new(12);
    let cfg = ConversationsConfig {
        generic_discovery: true,
        ..Default::default()
    };
    let a = net.add(1, "a1", cfg.clone());
    let b = net.add(2, "b1", cfg);
    let (pa, pb) = (net.pk(a), net.pk(b));
    assert!(net.nodes[b]
        .conv()
        .listen_topics()
        .iter()
        .any(|l| l.topic == topics::discovery_topic() && l.via == Via::Discovery));
    let m1 = net.with(a, |c, now| c.send_direct(now, &pb, "hi").unwrap());
    assert_eq!(net.posts.last().unwrap().topic, topics::discovery_topic());
    net.run_for(100);
    assert_exactly_once_in_order(&net.nodes[b], &[m1]);
    // b knows a1 (protocol version 1) now: negotiated.
    net.with(b, |c, now| c.send_direct(now, &pa, "yo").unwrap());
    let secret = topics::negotiated_secret(&key(2), &pa);
    assert_eq!(
        net.posts.last().unwrap().topic,
        topics::negotiated_topic(&secret)
    );
}

#[test]
fn unsafe_clock_and_foreign_types_dropped() {
    let mut net = Net::new(13);
    let a = net.add(1, "a1", ConversationsConfig::default());
    let b = net.add(2, "b1", ConversationsConfig::default());
    let (pa, pb) = (net.pk(a), net.pk(b));
    let now = net.now;
    let mut c4 = C4Message {
        text: "future".into(),
        content_type: CONTENT_TYPE_TEXT.into(),
        message_type: MessageType::UserMessage,
        clock: (now.as_millis() + 32 * 24 * 3600 * 1000) * 100,
        timestamp_ms: now.as_millis(),
        content: C4Content {
            chat_id: member_id(&pb),
            text: "future".into(),
            ..Default::default()
        },
    };
    net.nodes[b]
        .conv()
        .handle_incoming(now, &pa, &c4.encode(), Via::Partitioned);
    net.drain(b, None);
    assert_eq!(net.nodes[b].conv().stats().unsafe_clock, 1);
    c4.clock = 5;
    c4.message_type = MessageType::PublicGroupUserMessage;
    net.nodes[b]
        .conv()
        .handle_incoming(now, &pa, &c4.encode(), Via::Partitioned);
    net.drain(b, None);
    assert_eq!(net.nodes[b].conv().stats().ignored, 1);
    assert!(net.nodes[b].messages().is_empty());
}

#[test]
fn refused_send_leaves_no_history() {
    let mut net = Net::new(14);
    let mut cfg = mvds_config();
    cfg.mvds.max_stored_messages = 1;
    let a = net.add(1, "a1", cfg);
    let b = net.add(2, "b1", mvds_config());
    let pb = net.pk(b);
    let m1 = net.with(a, |c, now| c.send_direct(now, &pb, "one").unwrap());
    let err = net.with(a, |c, now| c.send_direct(now, &pb, "two").unwrap_err());
    assert!(
        matches!(err, ConversationError::Mvds(MvdsError::StoreFull { .. })),
        "{err:?}"
    );
    let hist: Vec<MessageId> = net.nodes[a]
        .history()
        .iter()
        .map(|m| m.message.message_id)
        .collect();
    assert_eq!(hist, vec![m1]);
    net.run_for(5_000);
    assert_exactly_once_in_order(&net.nodes[b], &[m1]);
}

#[test]
fn deferred_listens_differ_only_by_the_own_contact_code_key_being_a_password() {
    let identity = key(3);
    let conv = Conversations::new(
        ConversationsConfig::default(),
        identity,
        "inst",
        seed_from_u64(3),
        Time(0),
    )
    .unwrap();
    let own = public_key(&identity);
    let deferred = conv.listen_topics_deferred();
    let full = conv.listen_topics();
    assert_eq!(deferred.len(), full.len());
    for (d, f) in deferred.iter().zip(&full) {
        assert_eq!((d.topic, d.via), (f.topic, f.via));
        match (&d.kind, &f.kind) {
            (ListenKind::SymmetricPassword { password }, ListenKind::Symmetric { key }) => {
                assert_eq!(d.topic, topics::contact_code_topic(&own));
                assert_eq!(*password, topics::contact_code_topic_string(&own));
                assert_eq!(
                    crate::whisper::sym_key_from_password(password.as_bytes()),
                    *key
                );
                assert_eq!(*key, topics::contact_code_key(&own));
            }
            (d, f) => assert_eq!(d, f),
        }
    }
    assert!(deferred
        .iter()
        .any(|l| matches!(l.kind, ListenKind::SymmetricPassword { .. })));
}

#[test]
fn chat_format_records_round_trip() {
    use crate::chat::app::PayloadFormat;
    use crate::chat::format::{ChatFormat, ChatKind, FormatSetting};
    for kind in [ChatKind::Public, ChatKind::Direct, ChatKind::Group] {
        for setting in [
            None,
            Some(FormatSetting::Transit),
            Some(FormatSetting::Protobuf),
            Some(FormatSetting::Auto),
        ] {
            for observed in [
                None,
                Some(PayloadFormat::Transit),
                Some(PayloadFormat::Protobuf),
            ] {
                let r = Record::ChatFormat(ChatFormat {
                    kind,
                    chat: "0x04ab".into(),
                    setting,
                    observed,
                });
                assert_eq!(Record::decode(&r.encode()), Ok(r));
            }
        }
    }
    // Out-of-range values are errors.
    let mut e = crate::rlp::Encoder::new();
    e.list(|e| {
        e.u64(10).u64(3).bytes(b"x").u64(0).u64(0);
    });
    assert!(Record::decode(&e.finish()).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// The protobuf form, cut and changed anywhere, never panics the receiver.
    #[test]
    fn truncated_protobuf_payloads_never_panic(cut in 0usize..2000, flip in any::<u8>()) {
        let mut net = Net::new(11);
        let cfg = ConversationsConfig {
            payload_format: crate::chat::format::FormatSetting::Protobuf,
            ..Default::default()
        };
        let a = net.add(1, "a1", cfg);
        let b = net.add(2, "b1", ConversationsConfig::default());
        let pb = net.pk(b);
        net.with(a, |c, now| c.send_direct(now, &pb, "hello there").unwrap());
        let post = net.posts.last().unwrap().payload.clone();
        let mut bytes = post[..cut.min(post.len())].to_vec();
        if let Some(x) = bytes.last_mut() { *x ^= flip; }
        let pa = net.pk(a);
        let now = net.now;
        net.nodes[b].conv().handle_incoming(now, &pa, &bytes, Via::Partitioned);
        while net.nodes[b].conv().poll_action().is_some() {}
    }
}

/// The protobuf form over MVDS (status-go 4c0d8de with datasync puts the
/// ApplicationMetadataMessage in the MVDS message body), in a 1:1 chat and a group; `auto`
/// answers in it.
#[test]
fn protobuf_form_over_mvds_one_to_one_and_group() {
    use crate::chat::app::PayloadFormat;
    use crate::chat::format::{ChatKind, FormatSetting};
    let mut net = Net::new(12);
    let mut proto = mvds_config();
    proto.payload_format = FormatSetting::Protobuf;
    let a = net.add(1, "a1", proto);
    let b = net.add(2, "b1", mvds_config());
    let c = net.add(3, "c1", mvds_config());
    let (pa, pb, pc) = (net.pk(a), net.pk(b), net.pk(c));
    let m1 = net.with(a, |x, now| {
        x.send_direct(now, &pb, "proto over mvds").unwrap()
    });
    net.run_for(3_000);
    assert_exactly_once_in_order(&net.nodes[b], &[m1]);
    let chat_a = crate::chat::group::member_id(&pa);
    assert_eq!(
        net.nodes[b]
            .conv()
            .payload_format(ChatKind::Direct, &chat_a),
        PayloadFormat::Protobuf
    );
    let m2 = net.with(b, |x, now| {
        x.send_direct(now, &pa, "answered in kind").unwrap()
    });
    net.run_for(3_000);
    assert_exactly_once_in_order(&net.nodes[a], &[m2]);
    let gid = net.with(a, |x, now| x.create_group(now, "g", &[pb, pc]).unwrap());
    net.run_for(3_000);
    let m3 = net.with(a, |x, now| {
        x.send_group(now, &gid, "group in protobuf").unwrap()
    });
    net.run_for(3_000);
    for n in [b, c] {
        assert!(net.nodes[n].messages().iter().any(|m| m.message_id == m3));
        assert_eq!(
            net.nodes[n].conv().payload_format(ChatKind::Group, &gid),
            PayloadFormat::Protobuf
        );
    }
    assert_eq!(net.nodes[b].conv().stats().undecodable_protobuf, 0);
}
