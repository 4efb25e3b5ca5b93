//! Whole-stack tests: nodes wired back to back in memory, bytes moved by a tiny router with a
//! fake clock (the simulator does the same at scale).

use super::*;
use crate::rng::seed_from_u64;

const START: Time = Time(1_575_158_400_000);

fn key(i: u8) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[31] = i + 1;
    k[0] = 0x11;
    k
}

struct Net {
    nodes: Vec<Node>,
    /// (node, conn) -> (other node, other conn)
    links: BTreeMap<(usize, ConnId), (usize, ConnId)>,
    now: Time,
    events: Vec<(usize, Event)>,
    persisted: Vec<(usize, Persist)>,
    closed: Vec<(usize, ConnId)>,
}

impl Net {
    fn new(n: usize) -> Net {
        Net::with_configs(vec![NodeConfig::default(); n])
    }

    fn with_configs(configs: Vec<NodeConfig>) -> Net {
        let nodes = configs
            .into_iter()
            .enumerate()
            .map(|(i, c)| Node::new(c, key(i as u8), seed_from_u64(i as u64), START).unwrap())
            .collect();
        Net {
            nodes,
            links: BTreeMap::new(),
            now: START,
            events: vec![],
            persisted: vec![],
            closed: vec![],
        }
    }

    fn connect(&mut self, a: usize, b: usize) {
        let conn = self.links.len() as ConnId + 1;
        self.links.insert((a, conn), (b, conn));
        self.links.insert((b, conn), (a, conn));
        let remote = self.nodes[b].public_key();
        self.nodes[b]
            .handle_connection(self.now, conn, Direction::Inbound)
            .unwrap();
        self.nodes[a]
            .handle_connection(self.now, conn, Direction::Outbound { remote })
            .unwrap();
    }

    /// Moves every pending output until the network is quiet; returns whether anything moved.
    fn flush(&mut self) -> bool {
        let mut moved = false;
        loop {
            let mut any = false;
            for i in 0..self.nodes.len() {
                while let Some(action) = self.nodes[i].poll_action() {
                    any = true;
                    match action {
                        Action::Send { conn, bytes } => {
                            if let Some(&(j, c)) = self.links.get(&(i, conn)) {
                                self.nodes[j].handle_bytes(self.now, c, &bytes);
                            }
                        }
                        Action::Close { conn } => {
                            self.closed.push((i, conn));
                            if let Some((j, c)) = self.links.remove(&(i, conn)) {
                                self.links.remove(&(j, c));
                                self.nodes[j].handle_connection_closed(self.now, c);
                            }
                            self.nodes[i].handle_connection_closed(self.now, conn);
                        }
                        Action::Persist(p) => self.persisted.push((i, p)),
                        Action::Event(e) => self.events.push((i, e)),
                    }
                }
            }
            moved |= any;
            if !any {
                return moved;
            }
        }
    }

    /// Advances the clock by `ms` in steps of the earliest deadline, firing timers.
    fn advance(&mut self, ms: u64) {
        let end = self.now.plus_millis(ms);
        loop {
            self.flush();
            let next = self.nodes.iter().filter_map(|n| n.poll_timeout()).min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    for n in &mut self.nodes {
                        n.handle_timeout(self.now);
                    }
                }
                _ => break,
            }
        }
        self.now = end;
        for n in &mut self.nodes {
            n.handle_timeout(self.now);
        }
        self.flush();
    }

    fn received(&self, node: usize) -> Vec<&ChatMessage> {
        self.events
            .iter()
            .filter_map(|(i, e)| match e {
                Event::MessageReceived(m) if *i == node => Some(m),
                _ => None,
            })
            .collect()
    }

    fn command(&mut self, node: usize, cmd: Command) {
        self.nodes[node].handle_command(self.now, cmd).unwrap();
        self.flush();
    }
}

fn join(name: &str) -> Command {
    Command::JoinPublicChat { name: name.into() }
}

fn send(chat: &str, text: &str) -> Command {
    Command::SendPublicMessage {
        chat: chat.into(),
        text: text.into(),
    }
}

#[test]
fn two_nodes_exchange_public_messages() {
    let mut net = Net::new(2);
    net.connect(0, 1);
    net.advance(100);
    let connected = net
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::PeerConnected { .. }))
        .count();
    assert_eq!(connected, 2);
    net.command(0, join("status"));
    net.command(1, join("status"));
    net.command(0, send("status", "hello from 0"));
    net.command(1, send("status", "hello from 1"));
    net.advance(1_000);
    let at1 = net.received(1);
    assert_eq!(at1.len(), 1);
    assert_eq!(at1[0].text, "hello from 0");
    assert_eq!(at1[0].chat, "status");
    let mut from0 = [4u8; 65];
    from0[1..].copy_from_slice(&net.nodes[0].public_key());
    assert_eq!(at1[0].from, from0);
    let at0 = net.received(0);
    assert_eq!(at0.len(), 1);
    assert_eq!(at0[0].text, "hello from 1");
    // Each accepted message was persisted before the event announcing it.
    let persisted = net.persisted.iter().filter(|(i, _)| *i == 1).count();
    assert_eq!(persisted, 2, "one sent + one received at node 1");
}

#[test]
fn gossip_reaches_a_line_of_nodes_exactly_once() {
    let mut net = Net::new(5);
    for i in 0..4 {
        net.connect(i, i + 1);
    }
    net.advance(200);
    for i in 0..5 {
        net.command(i, join("line"));
    }
    net.command(0, send("line", "one"));
    net.command(4, send("line", "two"));
    net.advance(3_000);
    for i in 0..5 {
        let texts: Vec<_> = net.received(i).iter().map(|m| m.text.clone()).collect();
        let expected: Vec<String> = match i {
            0 => vec!["two".into()],
            4 => vec!["one".into()],
            _ => vec!["one".into(), "two".into()],
        };
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(sorted, expected, "node {i}");
    }
}

#[test]
fn non_members_relay_but_do_not_deliver() {
    let mut net = Net::new(3);
    net.connect(0, 1);
    net.connect(1, 2);
    net.advance(200);
    net.command(0, join("club"));
    net.command(2, join("club"));
    net.command(0, send("club", "psst"));
    net.advance(2_000);
    assert!(net.received(1).is_empty());
    assert_eq!(net.received(2).len(), 1);
}

#[test]
fn lamport_clock_advances_past_received_clock() {
    let mut net = Net::new(2);
    net.connect(0, 1);
    net.advance(100);
    net.command(0, join("c"));
    net.command(1, join("c"));
    net.command(0, send("c", "a"));
    net.advance(1_000);
    let first = net.received(1)[0].clock;
    net.command(1, send("c", "b"));
    net.advance(1_000);
    let second = net.received(0)[0].clock;
    assert!(second > first, "{second} <= {first}");
}

#[test]
fn peers_stay_connected_with_pings_over_a_long_run() {
    let mut net = Net::new(2);
    net.connect(0, 1);
    net.advance(10 * 60 * 1000);
    assert!(net.closed.is_empty(), "{:?}", net.closed);
    assert_eq!(net.nodes[0].connection_count(), 1);
}

#[test]
fn garbage_from_a_peer_disconnects_only_that_peer() {
    let mut net = Net::new(2);
    net.connect(0, 1);
    net.advance(100);
    net.nodes[0].handle_bytes(net.now, 1, &[0xde; 300]);
    net.flush();
    assert!(net
        .events
        .iter()
        .any(|(i, e)| *i == 0 && matches!(e, Event::PeerDisconnected { .. })));
    assert_eq!(net.nodes[0].connection_count(), 0);
}

#[test]
fn misuse_is_an_error() {
    let mut node = Node::new(NodeConfig::default(), key(0), [0; 32], START).unwrap();
    assert!(Node::new(NodeConfig::default(), [0; 32], [0; 32], START).is_err());
    node.handle_connection(START, 1, Direction::Inbound)
        .unwrap();
    assert_eq!(
        node.handle_connection(START, 1, Direction::Inbound),
        Err(NodeError::DuplicateConnection(1))
    );
    assert_eq!(
        node.handle_connection(START, 2, Direction::Outbound { remote: [0; 64] }),
        Err(NodeError::InvalidRemoteKey)
    );
    assert!(matches!(
        node.handle_command(START, join("")),
        Err(NodeError::Chat(ChatServiceError::InvalidName(_)))
    ));
}

#[test]
fn same_seed_same_bytes() {
    let run = || {
        let mut net = Net::new(2);
        net.connect(0, 1);
        net.advance(100);
        net.command(0, join("d"));
        net.command(0, send("d", "x"));
        let mut out = vec![];
        net.advance(500);
        for (i, e) in &net.events {
            out.push(format!("{i}{e:?}"));
        }
        out
    };
    assert_eq!(run(), run());
}

fn wire_key(i: u8) -> NodePublicKey {
    pubkey_to_wire(&public_key(&SecretKey::from_byte_array(&key(i)).unwrap()))
}

/// A = mailserver (0), B = sender (1), C = client offline while B sends (2), A2 = a second
/// mailserver (3) started later from A's persisted archive (a restart with A's rows).
#[test]
fn offline_node_gets_history_from_mailserver_and_restarted_mailserver() {
    let ms = NodeConfig {
        whisper: whisper::Config {
            mailserver: Some(whisper::MailserverConfig::default()),
            ..whisper::Config::default()
        },
        ..NodeConfig::default()
    };
    let client = NodeConfig {
        mailservers: vec![wire_key(0), wire_key(3)],
        ..NodeConfig::default()
    };
    let mut net = Net::with_configs(vec![ms.clone(), NodeConfig::default(), client, ms]);
    net.connect(1, 0);
    net.advance(1_000);
    for i in 0..3 {
        net.command(1, send("history", &format!("old message {i}")));
        net.advance(1_000);
    }
    // Status TTL is 15 s: after a minute nothing is left in any pool.
    net.advance(60_000);
    assert_eq!(net.nodes[0].whisper().pool_len(), 0);
    let archived: Vec<Vec<u8>> = net
        .persisted
        .iter()
        .filter_map(|(i, p)| match p {
            Persist::Envelope { raw, .. } if *i == 0 => Some(raw.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(archived.len(), 3);

    // C comes online, asks A.
    net.connect(2, 0);
    net.advance(1_000);
    assert!(net.received(2).is_empty());
    let now = net.now;
    let err = net.nodes[2].request_history(now, "history", None, Some(wire_key(1)));
    assert_eq!(err, Err(NodeError::NoMailserver));
    net.nodes[2]
        .request_history(now, "history", Some(START.as_secs()), None)
        .unwrap();
    net.advance(500);
    let texts: Vec<String> = net.received(2).iter().map(|m| m.text.clone()).collect();
    assert_eq!(texts, ["old message 0", "old message 1", "old message 2"]);
    assert!(net.events.iter().any(|(i, e)| *i == 2
        && matches!(
            e,
            Event::HistoryRequestCompleted {
                error: None,
                more: false,
                ..
            }
        )));

    // A2 replays A's rows (as after a restart) and serves the same history; C dedups it.
    for raw in &archived {
        assert_eq!(net.nodes[3].restore_archived(raw), Ok(true));
    }
    net.connect(2, 3);
    net.advance(1_000);
    let now = net.now;
    net.nodes[2]
        .request_history(now, "history", Some(START.as_secs()), Some(wire_key(3)))
        .unwrap();
    net.advance(500);
    assert_eq!(net.received(2).len(), 3, "no duplicates");
    assert_eq!(net.nodes[3].whisper().stats().envelopes_served, 3);
    assert!(net.nodes[1].restore_archived(&archived[0]).is_err());
}
