//! Whole-stack tests: nodes wired back to back in memory, bytes moved by a tiny router with a
//! fake clock (the simulator does the same at scale).

use super::*;
use crate::p2p::peers::DIAL_CONN_ID_BASE;

mod counters;
mod shh;
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
    next_conn: ConnId,
    /// Nodes whose dials are answered with "connection refused".
    unreachable: Vec<usize>,
    dials: Vec<(usize, ConnId, Enode)>,
}

impl Net {
    fn new(n: usize) -> Net {
        Net::with_config(n, |_| NodeConfig::default())
    }

    fn with_config(n: usize, config: impl Fn(usize) -> NodeConfig) -> Net {
        Net::with_configs((0..n).map(config).collect())
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
            next_conn: 1,
            unreachable: vec![],
            dials: vec![],
        }
    }

    fn enode(&self, i: usize) -> Enode {
        Enode::new(
            self.nodes[i].public_key(),
            std::net::SocketAddr::from(([10, 0, 0, i as u8], 30303)),
        )
    }

    /// Performs a node's dial: connects to the node with that key unless it is unreachable.
    fn dial(&mut self, i: usize, conn: ConnId, enode: Enode) {
        self.dials.push((i, conn, enode));
        let target =
            (0..self.nodes.len()).find(|&j| self.nodes[j].public_key() == enode.public_key);
        match target {
            Some(j) if !self.unreachable.contains(&j) => {
                let inbound = self.next_conn;
                self.next_conn += 1;
                self.links.insert((i, conn), (j, inbound));
                self.links.insert((j, inbound), (i, conn));
                self.nodes[j]
                    .handle_connection(self.now, inbound, Direction::Inbound)
                    .unwrap();
                self.nodes[i]
                    .handle_connection(
                        self.now,
                        conn,
                        Direction::Outbound {
                            remote: enode.public_key,
                        },
                    )
                    .unwrap();
            }
            _ => self.nodes[i].handle_dial_failed(self.now, conn).unwrap(),
        }
    }

    /// Cuts every link of node `i` as a network failure would (both ends see a closed socket).
    fn cut(&mut self, i: usize) {
        let ends: Vec<((usize, ConnId), (usize, ConnId))> = self
            .links
            .iter()
            .filter(|(a, _)| a.0 == i)
            .map(|(a, b)| (*a, *b))
            .collect();
        for (a, b) in ends {
            self.links.remove(&a);
            self.links.remove(&b);
            self.nodes[a.0].handle_connection_closed(self.now, a.1);
            self.nodes[b.0].handle_connection_closed(self.now, b.1);
        }
        self.flush();
    }

    fn connect(&mut self, a: usize, b: usize) {
        let conn = self.next_conn;
        self.next_conn += 1;
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
                        Action::Dial { conn, enode } => self.dial(i, conn, enode),
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
    let persisted = net
        .persisted
        .iter()
        .filter(|(i, p)| *i == 1 && matches!(p, Persist::ChatMessage(_)))
        .count();
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

fn connected_events(net: &Net, node: usize) -> usize {
    net.events
        .iter()
        .filter(|(i, e)| *i == node && matches!(e, Event::PeerConnected { .. }))
        .count()
}

fn disconnected_events(net: &Net, node: usize) -> Vec<String> {
    net.events
        .iter()
        .filter_map(|(i, e)| match e {
            Event::PeerDisconnected { reason, .. } if *i == node => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

fn with_test_capability(_: usize) -> NodeConfig {
    NodeConfig {
        extra_capabilities: vec![Capability::new("tst", 1, 8)],
        ..NodeConfig::default()
    }
}

/// The done-when run: two nodes sharing two capabilities (Whisper chat traffic and a second
/// capability's messages both ways) over six simulated hours of pings stay connected.
#[test]
fn two_capabilities_of_traffic_stay_connected_over_a_long_run() {
    let mut net = Net::with_config(2, with_test_capability);
    net.connect(0, 1);
    net.advance(100);
    assert_eq!(connected_events(&net, 0), 1);
    net.command(0, join("long"));
    net.command(1, join("long"));
    let conn = 1;
    let hours = 6;
    let minutes = hours * 60;
    for minute in 0..minutes {
        if minute % 10 == 0 {
            net.command(0, send("long", &format!("m{minute}")));
        }
        for (node, code) in [(0usize, 1u64), (1, 7)] {
            net.command(
                node,
                Command::SendCapabilityMessage {
                    conn,
                    capability: "tst".into(),
                    code,
                    payload: vec![minute as u8; 100],
                },
            );
        }
        net.advance(60_000);
    }
    assert!(net.closed.is_empty(), "{:?}", net.closed);
    assert!(disconnected_events(&net, 0).is_empty());
    for node in 0..2 {
        assert_eq!(net.nodes[node].connection_count(), 1);
        assert_eq!(net.nodes[node].stats().sessions_closed, 0);
        let tst: Vec<u64> = net
            .events
            .iter()
            .filter_map(|(i, e)| match e {
                Event::CapabilityMessage {
                    capability, code, ..
                } if *i == node && capability == "tst" => Some(*code),
                _ => None,
            })
            .collect();
        assert_eq!(tst.len(), minutes as usize, "node {node}");
        assert!(tst.iter().all(|&c| c == if node == 0 { 7 } else { 1 }));
    }
    assert_eq!(net.received(1).len(), (minutes / 10) as usize);
    // Unknown capability / connection are errors, not panics.
    assert!(matches!(
        net.nodes[0].handle_command(
            net.now,
            Command::SendCapabilityMessage {
                conn,
                capability: "nope".into(),
                code: 0,
                payload: vec![],
            }
        ),
        Err(NodeError::Session(SessionError::UnknownCapability { .. }))
    ));
    assert_eq!(
        net.nodes[0].handle_command(
            net.now,
            Command::SendCapabilityMessage {
                conn: 99,
                capability: "tst".into(),
                code: 0,
                payload: vec![],
            }
        ),
        Err(NodeError::UnknownConnection(99))
    );
}

#[test]
fn static_peer_is_dialed_by_the_node_and_redialed_after_loss() {
    let mut net = Net::new(2);
    let target = net.enode(1);
    net.unreachable.push(1);
    net.command(0, Command::AddStaticPeer(target));
    assert_eq!(net.dials.len(), 1);
    assert!(net.dials[0].1 >= DIAL_CONN_ID_BASE);
    // Unreachable: redialed after 1 s, 2 s, 4 s...
    net.advance(3_500);
    assert_eq!(net.dials.len(), 3);
    assert_eq!(net.nodes[0].stats().peers.dials_failed, 3);
    net.unreachable.clear();
    net.advance(5_000);
    assert_eq!(net.dials.len(), 4);
    assert_eq!(connected_events(&net, 0), 1);
    assert_eq!(net.nodes[0].connection_count(), 1);
    // The link is cut: node 0 redials on its own, node 1 just accepts.
    net.cut(0);
    assert_eq!(net.nodes[0].connection_count(), 0);
    net.advance(60_000);
    assert_eq!(connected_events(&net, 0), 2);
    assert_eq!(net.nodes[0].connection_count(), 1);
    assert_eq!(net.dials.len(), 5);
    // Self-dial is refused.
    let me = net.enode(0);
    assert_eq!(
        net.nodes[0].handle_command(net.now, Command::AddStaticPeer(me)),
        Err(NodeError::SelfDial)
    );
    let own = net.nodes[0].public_key();
    assert_eq!(
        net.nodes[0].handle_connection(net.now, 7, Direction::Outbound { remote: own }),
        Err(NodeError::SelfDial)
    );
}

#[test]
fn mutual_static_peers_keep_exactly_one_connection() {
    let mut net = Net::new(2);
    let (e0, e1) = (net.enode(0), net.enode(1));
    // Both dial each other in the same instant.
    net.nodes[0]
        .handle_command(net.now, Command::AddStaticPeer(e1))
        .unwrap();
    net.nodes[1]
        .handle_command(net.now, Command::AddStaticPeer(e0))
        .unwrap();
    net.advance(10_000);
    for node in 0..2 {
        assert_eq!(net.nodes[node].connection_count(), 1, "node {node}");
    }
    let dups: u64 = (0..2).map(|n| net.nodes[n].stats().peers.duplicates).sum();
    assert!(dups >= 1);
    let already: u64 = (0..2)
        .map(|n| {
            net.nodes[n]
                .stats()
                .disconnects_sent
                .get(&DisconnectReason::AlreadyConnected)
                .copied()
                .unwrap_or(0)
        })
        .sum();
    assert!(already >= 1, "{:?}", net.nodes[0].stats());
    // And it stays that way (no redial storm): one more minute changes nothing.
    let dials = net.dials.len();
    net.advance(60_000);
    assert_eq!(net.dials.len(), dials);
    assert_eq!(net.nodes[0].connection_count(), 1);
    // The surviving connection carries traffic.
    net.command(0, join("dup"));
    net.command(1, join("dup"));
    net.command(0, send("dup", "once"));
    net.advance(2_000);
    assert_eq!(net.received(1).len(), 1);
}

#[test]
fn inbound_limit_answers_too_many_peers() {
    let mut net = Net::with_config(3, |i| NodeConfig {
        peers: crate::p2p::peers::Config {
            max_inbound: if i == 0 { 1 } else { 16 },
            ..Default::default()
        },
        ..NodeConfig::default()
    });
    net.connect(1, 0);
    net.advance(100);
    net.connect(2, 0);
    net.advance(100);
    assert_eq!(net.nodes[0].connection_count(), 1);
    assert_eq!(
        net.nodes[2]
            .stats()
            .disconnects_received
            .get(&DisconnectReason::TooManyPeers),
        Some(&1)
    );
    assert_eq!(net.nodes[0].stats().peers.rejected_too_many_peers, 1);
}

/// Issue 16: sockets that never send a byte used to fill the 50 pending handshakes (and keep
/// them for the 5 s handshake timeout), so a real peer could not connect. From one address
/// they now get at most their per-address share; from many, the oldest is evicted for a
/// newcomer; at the node's connection limit likewise.
#[test]
fn idle_inbound_sockets_do_not_lock_out_a_peer() {
    for (spread, max_connections) in [(false, 64), (true, 64), (true, 20)] {
        let mut net = Net::with_config(2, |_| NodeConfig {
            max_connections,
            ..NodeConfig::default()
        });
        for i in 0..60u8 {
            let ip = std::net::IpAddr::from([192, 0, 2, if spread { i } else { 1 }]);
            net.nodes[0]
                .handle_connection_from(net.now, 10_000 + u64::from(i), Direction::Inbound, ip)
                .unwrap();
        }
        net.flush();
        net.connect(1, 0);
        net.advance(100);
        let case = format!("spread {spread}, max_connections {max_connections}");
        let remote = net.nodes[1].public_key();
        assert!(net.nodes[0].connection_of(&remote).is_some(), "{case}");
        let peers = &net.nodes[0].stats().peers;
        match (spread, max_connections) {
            (false, _) => {
                let share = crate::p2p::peers::DEFAULT_MAX_PENDING_HANDSHAKES_PER_IP as u64;
                assert_eq!(peers.rejected_pending_per_ip, 60 - share, "{case}");
            }
            (true, 64) => assert_eq!(peers.evicted_pending_limit, 11, "{case}"),
            _ => assert_eq!(peers.evicted_connection_limit, 41, "{case}"),
        }
    }
}

#[test]
fn peer_faults_are_counted_by_reason_and_fault() {
    let mut net = Net::new(2);
    net.connect(0, 1);
    net.advance(100);
    net.nodes[0].handle_bytes(net.now, 1, &[0xde; 300]);
    net.flush();
    let s0 = net.nodes[0].stats();
    assert_eq!(s0.peer_faults.get(&Fault::BadHeaderMac), Some(&1));
    assert_eq!(
        s0.disconnects_sent.get(&DisconnectReason::ProtocolError),
        Some(&1)
    );
    // Node 1 got our Disconnect (its bytes were fine): counted as received, no fault.
    let s1 = net.nodes[1].stats();
    assert_eq!(
        s1.disconnects_received
            .get(&DisconnectReason::ProtocolError),
        Some(&1)
    );
    assert!(s1.peer_faults.is_empty());
}

#[test]
fn silent_peer_is_dropped_with_read_timeout() {
    let mut net = Net::new(1);
    // A peer that connects and never says anything.
    net.nodes[0]
        .handle_connection(net.now, 5, Direction::Inbound)
        .unwrap();
    net.advance(10_000);
    let s = net.nodes[0].stats();
    assert_eq!(s.peer_faults.get(&Fault::HandshakeTimeout), Some(&1));
    assert_eq!(
        s.disconnects_sent.get(&DisconnectReason::ReadTimeout),
        Some(&1)
    );
    assert_eq!(net.nodes[0].connection_count(), 0);
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
    // The chat's envelopes (the nodes' contact-code announcements are archived too).
    let chat_topic = PublicChats::subscription("history").topic.0;
    let archived: Vec<Vec<u8>> = net
        .persisted
        .iter()
        .filter_map(|(i, p)| match p {
            Persist::Envelope { raw, topic, .. } if *i == 0 && *topic == chat_topic => {
                Some(raw.clone())
            }
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

fn directs(net: &Net, node: usize) -> Vec<String> {
    net.events
        .iter()
        .filter_map(|(i, e)| match e {
            Event::Direct(m) if *i == node => Some(m.text.clone()),
            _ => None,
        })
        .collect()
}

fn group_texts(net: &Net, node: usize, group: &str) -> Vec<String> {
    net.events
        .iter()
        .filter_map(|(i, e)| match e {
            Event::Group { group_id, message } if *i == node && group_id == group => {
                Some(message.text.clone())
            }
            _ => None,
        })
        .collect()
}

fn conversation_events(net: &Net, node: usize) -> usize {
    net.events
        .iter()
        .filter(|(i, e)| {
            *i == node
                && matches!(
                    e,
                    Event::Direct(_) | Event::Group { .. } | Event::GroupUpdated { .. }
                )
        })
        .count()
}

fn line(n: usize) -> Net {
    let mut net = Net::new(n);
    for i in 0..n - 1 {
        net.connect(i, i + 1);
    }
    net.advance(200);
    net
}

#[test]
fn direct_messages_cross_a_relay_both_ways_exactly_once() {
    let mut net = line(3);
    let k0 = net.nodes[0].public_key();
    let k2 = net.nodes[2].public_key();
    net.command(
        0,
        Command::SendDirect {
            to: k2,
            text: "hi 2".into(),
        },
    );
    net.advance(3_000);
    net.command(
        2,
        Command::SendDirect {
            to: k0,
            text: "hi 0".into(),
        },
    );
    net.advance(3_000);
    net.command(
        0,
        Command::SendDirect {
            to: k2,
            text: "again".into(),
        },
    );
    net.advance(3_000);
    assert_eq!(directs(&net, 2), vec!["hi 2".to_string(), "again".into()]);
    assert_eq!(directs(&net, 0), vec!["hi 0".to_string()]);
    let Some(Event::Direct(m)) = net
        .events
        .iter()
        .find(|(i, e)| *i == 2 && matches!(e, Event::Direct(_)))
        .map(|(_, e)| e)
    else {
        panic!("no direct message at 2");
    };
    assert_eq!(m.from[1..], k0[..]);
    assert_eq!(m.chat, format!("0x04{}", hex::encode(k0)));
    // The relay decrypts nothing.
    assert_eq!(conversation_events(&net, 1), 0);
    assert_eq!(directs(&net, 1), Vec::<String>::new());
    // Conversation state was persisted before it was used.
    for node in [0, 2] {
        assert!(net
            .persisted
            .iter()
            .any(|(i, p)| *i == node && matches!(p, Persist::Conversation(_))));
    }
    assert_eq!(net.nodes[2].stats().unsigned_dropped, 0);
}

#[test]
fn late_group_member_gets_new_messages_only_and_outsiders_nothing() {
    let mut net = line(4);
    let k1 = net.nodes[1].public_key();
    let k2 = net.nodes[2].public_key();
    net.command(
        0,
        Command::CreateGroup {
            name: "trio".into(),
            members: vec![k1],
        },
    );
    net.advance(3_000);
    let group = net
        .events
        .iter()
        .find_map(|(i, e)| match e {
            Event::GroupUpdated { group_id, .. } if *i == 0 => Some(group_id.clone()),
            _ => None,
        })
        .expect("creator sees its group");
    assert!(net
        .events
        .iter()
        .any(|(i, e)| *i == 1
            && matches!(e, Event::GroupUpdated { group_id, .. } if *group_id == group)));
    net.command(
        0,
        Command::SendGroup {
            group: group.clone(),
            text: "before".into(),
        },
    );
    net.advance(3_000);
    net.command(
        0,
        Command::AddGroupMember {
            group: group.clone(),
            member: k2,
        },
    );
    net.advance(3_000);
    let at2 = net
        .events
        .iter()
        .rev()
        .find_map(|(i, e)| match e {
            Event::GroupUpdated {
                group_id, members, ..
            } if *i == 2 && *group_id == group => Some(members.clone()),
            _ => None,
        })
        .expect("late member learns the group");
    assert_eq!(at2.len(), 3, "late member gets the current membership");
    net.command(
        0,
        Command::SendGroup {
            group: group.clone(),
            text: "after".into(),
        },
    );
    net.advance(3_000);
    net.command(
        1,
        Command::SendGroup {
            group: group.clone(),
            text: "from 1".into(),
        },
    );
    net.advance(3_000);
    net.command(
        2,
        Command::SendGroup {
            group: group.clone(),
            text: "from 2".into(),
        },
    );
    net.advance(3_000);
    assert_eq!(
        group_texts(&net, 1, &group),
        vec!["before".to_string(), "after".into(), "from 2".into()]
    );
    assert_eq!(
        group_texts(&net, 2, &group),
        vec!["after".to_string(), "from 1".into()]
    );
    assert_eq!(
        group_texts(&net, 0, &group),
        vec!["from 1".to_string(), "from 2".into()]
    );
    // Node 3 relays everything and decrypts nothing.
    assert_eq!(conversation_events(&net, 3), 0);
}

#[test]
fn conversation_misuse_is_a_typed_error() {
    let mut net = line(2);
    let own = net.nodes[0].public_key();
    let now = net.now;
    assert!(matches!(
        net.nodes[0].handle_command(
            now,
            Command::SendDirect {
                to: own,
                text: "me".into()
            }
        ),
        Err(NodeError::Conversation(ConversationError::SendToSelf))
    ));
    assert!(matches!(
        net.nodes[0].handle_command(
            now,
            Command::SendDirect {
                to: [0u8; 64],
                text: "x".into()
            }
        ),
        Err(NodeError::InvalidContactKey)
    ));
    assert!(matches!(
        net.nodes[0].handle_command(
            now,
            Command::SendGroup {
                group: "nope".into(),
                text: "x".into()
            }
        ),
        Err(NodeError::Conversation(ConversationError::UnknownGroup(_)))
    ));
}

#[test]
fn conversation_state_is_persisted_before_its_bytes_leave() {
    let mut net = line(2);
    let k1 = net.nodes[1].public_key();
    let now = net.now;
    net.nodes[0]
        .handle_command(
            now,
            Command::SendDirect {
                to: k1,
                text: "ordered".into(),
            },
        )
        .unwrap();
    let mut actions = vec![];
    while let Some(a) = net.nodes[0].poll_action() {
        actions.push(a);
    }
    let first_persist = actions
        .iter()
        .position(|a| matches!(a, Action::Persist(Persist::Conversation(_))))
        .expect("the send is persisted");
    // The post is pooled now and gossiped at the next broadcast: no bytes before the record.
    assert!(actions[..first_persist]
        .iter()
        .all(|a| !matches!(a, Action::Send { .. })));
    let pooled = net.nodes[0].whisper().pool_len();
    assert!(pooled >= 1, "the envelope waits in the pool");
    for a in actions {
        if let Action::Send { conn, bytes } = a {
            let (j, c) = net.links[&(0, conn)];
            net.nodes[j].handle_bytes(now, c, &bytes);
        }
    }
    net.advance(3_000);
    assert_eq!(directs(&net, 1), vec!["ordered".to_string()]);
}

#[test]
fn unsigned_payload_on_a_conversation_topic_is_counted_and_dropped() {
    let mut net = line(2);
    let to = pubkey_from_wire(&net.nodes[1].public_key()).unwrap();
    let now = net.now;
    let params = whisper::MessageParams {
        payload: b"not signed".to_vec(),
        padding: None,
        sign_with: None,
        topic: crate::chat::topics::partitioned_topic(&to),
        ttl_secs: 10,
        pow_target: 0.002,
    };
    net.nodes[0]
        .whisper
        .post_with(now, params, &whisper::Encryption::Asymmetric(to))
        .unwrap();
    net.advance(3_000);
    assert_eq!(net.nodes[1].stats().unsigned_dropped, 1);
    assert_eq!(conversation_events(&net, 1), 0);
}

/// Restarts node `i` from what it persisted (conversation records, public messages), with a
/// fresh seed, as a driver does after a crash: its links are cut first.
fn restart_from_records(net: &mut Net, i: usize, fresh_seed: u64) {
    restart_from_log(net, i, fresh_seed, |r| r)
}

/// [`restart_from_records`] from `log(records)` (e.g. a compacted log).
fn restart_from_log(
    net: &mut Net,
    i: usize,
    fresh_seed: u64,
    log: impl FnOnce(Vec<Record>) -> Vec<Record>,
) {
    net.cut(i);
    let records: Vec<Record> = net
        .persisted
        .iter()
        .filter_map(|(n, p)| match p {
            Persist::Conversation(r) if *n == i => Some(r.clone()),
            _ => None,
        })
        .collect();
    let public: Vec<ChatMessage> = net
        .persisted
        .iter()
        .filter_map(|(n, p)| match p {
            Persist::ChatMessage(m) if *n == i => Some(m.clone()),
            _ => None,
        })
        .collect();
    let mut node = Node::restore(
        NodeConfig::default(),
        key(i as u8),
        seed_from_u64(fresh_seed),
        net.now,
        log(records),
    )
    .unwrap();
    for m in &public {
        node.restore_public_message(m);
    }
    let own: Vec<Vec<u8>> = net
        .persisted
        .iter()
        .filter_map(|(n, p)| match p {
            Persist::OwnEnvelope { raw, .. } if *n == i => Some(raw.clone()),
            _ => None,
        })
        .collect();
    for raw in &own {
        node.restore_own_envelope(net.now, raw).unwrap();
    }
    net.nodes[i] = node;
}

#[test]
fn a_post_killed_before_its_gossip_round_is_sent_after_the_restart() {
    for direct in [false, true] {
        let mut net = line(2);
        net.command(0, join("c"));
        net.command(1, join("c"));
        net.advance(3_000);
        let k1 = net.nodes[1].public_key();
        // Accepted and pooled, but the 300 ms gossip round has not come: a crash now...
        if direct {
            net.command(
                0,
                Command::SendDirect {
                    to: k1,
                    text: "one".into(),
                },
            );
        } else {
            net.command(0, send("c", "one"));
        }
        assert!(net
            .persisted
            .iter()
            .any(|(i, p)| *i == 0 && matches!(p, Persist::OwnEnvelope { .. })));
        restart_from_records(&mut net, 0, 5);
        net.command(0, join("c"));
        net.connect(0, 1);
        net.advance(3_000);
        // ...loses nothing, and delivers it once.
        let got = if direct {
            directs(&net, 1)
        } else {
            net.received(1).iter().map(|m| m.text.clone()).collect()
        };
        assert_eq!(got, vec!["one".to_string()], "direct: {direct}");
    }
}

#[test]
fn restarted_node_keeps_its_sessions_history_and_dedup() {
    restart_keeps_sessions_history_and_dedup(|r| r);
}

/// Issue 16 item 10: a node restored from a snapshot (the folded head of its log) plus the
/// tail behaves as one restored from the whole log, and the snapshot is smaller.
#[test]
fn restarted_from_snapshot_and_tail_keeps_its_sessions_history_and_dedup() {
    restart_keeps_sessions_history_and_dedup(|records| {
        let full = crate::chat::direct::compact(records.clone());
        let flat = records.iter().cloned().flat_map(Record::flatten).count();
        assert!(full.len() < flat, "{flat} → {}", full.len());
        for cut in 0..=records.len() {
            let mut resumed = crate::chat::direct::compact(records[..cut].to_vec());
            resumed.extend(records[cut..].iter().cloned());
            assert_eq!(crate::chat::direct::compact(resumed), full, "cut {cut}");
        }
        let half = records.len() / 2;
        let mut log = crate::chat::direct::compact(records[..half].to_vec());
        log.extend(records[half..].iter().cloned());
        log
    });
}

fn restart_keeps_sessions_history_and_dedup(log: impl FnOnce(Vec<Record>) -> Vec<Record>) {
    let mut net = line(3);
    let k0 = net.nodes[0].public_key();
    let k2 = net.nodes[2].public_key();
    net.command(
        0,
        Command::SendDirect {
            to: k2,
            text: "before".into(),
        },
    );
    net.advance(3_000);
    net.command(
        2,
        Command::SendDirect {
            to: k0,
            text: "reply".into(),
        },
    );
    net.advance(3_000);
    assert_eq!(directs(&net, 2), vec!["before".to_string()]);
    let events_before = net.events.len();

    restart_from_log(&mut net, 2, 99, log);
    net.connect(1, 2);
    net.advance(3_000);
    // The restored node re-sent nothing it had posted, delivered nothing twice.
    assert_eq!(
        net.events[events_before..]
            .iter()
            .filter(|(i, e)| *i == 0 && matches!(e, Event::Direct(_)))
            .count(),
        0
    );
    // Both ways still work: the ratchet sessions survived the restart.
    net.command(
        0,
        Command::SendDirect {
            to: k2,
            text: "after".into(),
        },
    );
    net.advance(3_000);
    net.command(
        2,
        Command::SendDirect {
            to: k0,
            text: "after too".into(),
        },
    );
    net.advance(3_000);
    assert_eq!(
        directs(&net, 2),
        vec!["before".to_string(), "after".to_string()]
    );
    assert_eq!(
        directs(&net, 0),
        vec!["reply".to_string(), "after too".to_string()]
    );
    // The session was reused, not renegotiated from the prekey bundle: the restored node
    // still knows node 0's installations.
    assert!(net.nodes[2]
        .conversations()
        .negotiated_agreed(net.now, &pubkey_from_wire(&k0).unwrap()));
}

#[test]
fn restored_public_message_is_a_duplicate() {
    let mut net = line(2);
    net.command(0, join("c"));
    net.command(1, join("c"));
    net.advance(500);
    net.command(0, send("c", "one"));
    net.advance(2_000);
    assert_eq!(net.received(1).len(), 1);
    restart_from_records(&mut net, 1, 7);
    net.command(1, join("c"));
    net.connect(0, 1);
    net.advance(2_000);
    // Node 0 gossips its pool to the new session: the copy of "one" is a duplicate.
    assert_eq!(net.received(1).len(), 1);
    assert!(net.nodes[1].stats().duplicates_dropped >= 1);
}

#[test]
fn contact_code_publication_can_be_turned_off() {
    let mut on = Net::new(1);
    on.advance(1_000);
    assert_eq!(
        on.nodes[0].whisper().pool_len(),
        1,
        "status-go publishes at start"
    );
    let mut off = Net::with_config(1, |_| {
        let mut c = NodeConfig::default();
        c.conversations.publish_contact_code = false;
        c
    });
    off.advance(1_000);
    assert_eq!(off.nodes[0].whisper().pool_len(), 0);
}

#[test]
fn own_contact_code_key_is_derived_once() {
    // Before publishing, our own contact-code filter holds the password (PBKDF2 deferred);
    // once the key is derived to publish, the filter holds that key: an envelope arriving on
    // the topic later (another device's code) does not derive it a second time.
    let mut net = Net::new(1);
    let own_topic =
        crate::chat::topics::contact_code_topic(&net.nodes[0].conversations().identity_public());
    let kinds = |net: &Net| -> Vec<whisper::FilterKey> {
        net.nodes[0]
            .whisper()
            .filters()
            .filter(|(_, f)| f.topics.contains(&own_topic))
            .map(|(_, f)| f.key.clone())
            .collect()
    };
    assert!(matches!(
        kinds(&net).as_slice(),
        [whisper::FilterKey::SymmetricPassword(_)]
    ));
    net.advance(1_000);
    assert_eq!(net.nodes[0].whisper().pool_len(), 1, "published");
    let key =
        crate::chat::topics::contact_code_key(&net.nodes[0].conversations().identity_public());
    assert_eq!(kinds(&net), vec![whisper::FilterKey::Symmetric(key)]);
}

#[test]
fn contact_code_waits_for_its_interval_after_the_last_publication() {
    // Published 6 h − 5 s before the start (status-go's `lastPublished`): the next one is due
    // 5 s after the start, not at it.
    let interval = crate::chat::direct::DEFAULT_CONTACT_CODE_INTERVAL_MS;
    let mut net = Net::with_config(1, |_| {
        let mut c = NodeConfig::default();
        c.conversations.contact_code_last_published_ms = Some(START.as_millis() + 5_000 - interval);
        c
    });
    net.advance(4_000);
    assert_eq!(net.nodes[0].whisper().pool_len(), 0);
    net.advance(2_000);
    assert_eq!(net.nodes[0].whisper().pool_len(), 1);
}

/// The last membership node `i` saw of `group`: (members, admins, name).
fn last_group_state(net: &Net, i: usize, group: &str) -> (Vec<String>, Vec<String>, String) {
    net.events
        .iter()
        .rev()
        .find_map(|(n, e)| match e {
            Event::GroupUpdated {
                group_id,
                members,
                admins,
                name,
            } if *n == i && group_id == group => {
                Some((members.clone(), admins.clone(), name.clone()))
            }
            _ => None,
        })
        .expect("group known")
}

#[test]
fn group_rename_admin_remove_and_leave_through_the_node() {
    let mut net = line(3);
    let (k1, k2) = (net.nodes[1].public_key(), net.nodes[2].public_key());
    net.command(
        0,
        Command::CreateGroup {
            name: "g".into(),
            members: vec![k1, k2],
        },
    );
    net.advance(3_000);
    let (group, ..) = net
        .events
        .iter()
        .find_map(|(i, e)| match e {
            Event::GroupUpdated { group_id, .. } if *i == 0 => Some((group_id.clone(), ())),
            _ => None,
        })
        .unwrap();
    // A non-admin cannot rename; the admin can, and everyone sees the new name.
    assert!(net.nodes[1]
        .handle_command(
            net.now,
            Command::RenameGroup {
                group: group.clone(),
                name: "x".into()
            }
        )
        .is_err());
    net.command(
        0,
        Command::RenameGroup {
            group: group.clone(),
            name: "renamed".into(),
        },
    );
    net.command(
        0,
        Command::AddGroupAdmins {
            group: group.clone(),
            members: vec![k1],
        },
    );
    net.advance(3_000);
    let (members, admins, name) = last_group_state(&net, 2, &group);
    assert_eq!(
        (members.len(), admins.len(), name.as_str()),
        (3, 2, "renamed")
    );
    // The new admin removes node 2, which then gets nothing more.
    net.command(
        1,
        Command::RemoveGroupMember {
            group: group.clone(),
            member: k2,
        },
    );
    net.advance(3_000);
    net.command(
        0,
        Command::SendGroup {
            group: group.clone(),
            text: "without 2".into(),
        },
    );
    net.advance(3_000);
    assert_eq!(group_texts(&net, 1, &group), vec!["without 2".to_string()]);
    assert!(group_texts(&net, 2, &group).is_empty());
    // Node 0 leaves (giving up its admin rights); node 1 stays the admin.
    net.command(
        0,
        Command::LeaveGroup {
            group: group.clone(),
        },
    );
    net.advance(3_000);
    let (members, admins, _) = last_group_state(&net, 1, &group);
    assert_eq!((members.len(), admins.len()), (1, 1));
    assert!(net.nodes[0]
        .handle_command(
            net.now,
            Command::SendGroup {
                group: group.clone(),
                text: "gone".into()
            }
        )
        .is_err());
}

#[test]
fn own_devices_are_listed_paired_and_synced() {
    // Nodes 0 and 1 are two devices of one identity; node 2 is a contact.
    let mut net = Net::with_configs(
        (0..3)
            .map(|i| NodeConfig {
                installation_id: format!("device-{i}"),
                ..NodeConfig::default()
            })
            .collect(),
    );
    // Its own node key (peers keep one connection per node key), node 0's chat identity.
    net.nodes[1] = Node::new(
        NodeConfig {
            installation_id: "device-1".into(),
            chat_identity: Some(key(0)),
            ..NodeConfig::default()
        },
        key(1),
        seed_from_u64(100),
        net.now,
    )
    .unwrap();
    assert_eq!(net.nodes[1].chat_public_key(), net.nodes[0].public_key());
    assert_ne!(net.nodes[1].public_key(), net.nodes[0].public_key());
    net.connect(0, 2);
    net.connect(1, 2);
    net.advance(3_000);
    assert_eq!(
        net.nodes[0].own_devices(),
        vec![("device-1".to_string(), false)]
    );
    net.command(
        0,
        Command::PairDevice {
            installation_id: "device-1".into(),
            enabled: true,
        },
    );
    assert_eq!(
        net.nodes[0].own_devices(),
        vec![("device-1".to_string(), true)]
    );
    let k2 = net.nodes[2].public_key();
    net.command(
        0,
        Command::SendDirect {
            to: k2,
            text: "from device 0".into(),
        },
    );
    net.advance(3_000);
    assert_eq!(directs(&net, 2), vec!["from device 0".to_string()]);
    // The paired device has it too, in the chat with node 2.
    let synced: Vec<&ChatMessage> = net
        .events
        .iter()
        .filter_map(|(i, e)| match e {
            Event::Direct(m) if *i == 1 => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(synced.len(), 1);
    assert_eq!(synced[0].text, "from device 0");
    assert_eq!(synced[0].chat, format!("0x04{}", hex::encode(k2)));
    assert!(net.nodes[1]
        .handle_command(
            net.now,
            Command::PairDevice {
                installation_id: "no-such-device".into(),
                enabled: true
            }
        )
        .is_err());
}

#[test]
fn disconnect_all_says_quitting_to_every_peer_and_redials_nothing() {
    let mut net = Net::new(3);
    let target = net.enode(1);
    net.command(0, Command::AddStaticPeer(target));
    net.connect(2, 0);
    net.advance(500);
    assert_eq!(net.nodes[0].connection_count(), 2);
    let dials = net.dials.len();
    let now = net.now;
    net.nodes[0].disconnect_all(now, DisconnectReason::Quitting);
    net.flush();
    for i in [1, 2] {
        assert_eq!(
            net.nodes[i]
                .stats()
                .disconnects_received
                .get(&DisconnectReason::Quitting),
            Some(&1),
            "node {i} was told why"
        );
    }
    assert_eq!(
        net.nodes[0]
            .stats()
            .disconnects_sent
            .get(&DisconnectReason::Quitting),
        Some(&2)
    );
    assert_eq!(net.nodes[0].connection_count(), 0);
    // The static peer is not redialed.
    net.advance(60_000);
    assert_eq!(net.dials.len(), dials);
}

#[test]
fn own_public_posts_are_never_decrypted_by_the_sender_and_still_reported_once() {
    // Issue 14 item 5: a sender used to run its own posts through its own filter (one
    // ecrecover each, then dropped as a duplicate). The app sees its own messages as before:
    // one MessageSent (and one persisted ChatMessage) per post, never a MessageReceived.
    const POSTS: usize = 5;
    let mut net = Net::new(2);
    net.connect(0, 1);
    net.advance(100);
    net.command(0, join("status"));
    net.command(1, join("status"));
    for i in 0..POSTS {
        net.command(0, send("status", &format!("own {i}")));
    }
    net.advance(1_000);
    let w = net.nodes[0].whisper().stats();
    assert_eq!(w.decrypt_attempts, 0, "decryptions tried on own envelopes");
    assert_eq!(w.delivered, 0, "own envelopes delivered to own filters");
    assert_eq!(net.nodes[0].stats().duplicates_dropped, 0);
    let sent: Vec<String> = net
        .events
        .iter()
        .filter_map(|(i, e)| match e {
            Event::MessageSent(m) if *i == 0 => Some(m.text.clone()),
            _ => None,
        })
        .collect();
    let want: Vec<String> = (0..POSTS).map(|i| format!("own {i}")).collect();
    assert_eq!(sent, want);
    assert!(net.received(0).is_empty());
    let persisted = net
        .persisted
        .iter()
        .filter(|(i, p)| *i == 0 && matches!(p, Persist::ChatMessage(_)))
        .count();
    assert_eq!(persisted, POSTS);
    // The other node still receives every post (one decryption each), in gossip order.
    let mut texts: Vec<String> = net.received(1).iter().map(|m| m.text.clone()).collect();
    texts.sort();
    assert_eq!(texts, want);
    assert_eq!(
        net.nodes[1].whisper().stats().decrypt_attempts,
        POSTS as u64
    );
}

// ---------------------------------------------------------------------------------------------
// Both application-layer eras at the node (issue 13 items 2, 3, 7): node 0 is "alice" of
// testdata/vectors/go-generated/chat, posting the bytes status-go wrote.

const GO_V036: &str =
    include_str!("../../../testdata/vectors/go-generated/chat/status-go-v0.36.0.json");
const GO_V0362: &str =
    include_str!("../../../testdata/vectors/go-generated/chat/status-go-4c0d8de.json");

fn go_hex(v: &serde_json::Value, path: &str) -> Vec<u8> {
    let t = path
        .split('.')
        .fold(v, |v, k| match k.parse::<usize>() {
            Ok(i) if v.is_array() => &v[i],
            _ => &v[k],
        })
        .as_str()
        .unwrap();
    hex::decode(t.strip_prefix("0x").unwrap_or(t)).unwrap()
}

/// Two connected nodes in public chat `hush-vectors`; node 0 has alice's key.
fn alice_and_node1() -> Net {
    let v: serde_json::Value = serde_json::from_str(GO_V036).unwrap();
    let alice: [u8; 32] = go_hex(&v, "keys.alice.private_hex").try_into().unwrap();
    let mut net = Net::new(2);
    net.nodes[0] = Node::new(NodeConfig::default(), alice, seed_from_u64(90), START).unwrap();
    net.connect(0, 1);
    net.advance(100);
    net.command(0, join("hush-vectors"));
    net.command(1, join("hush-vectors"));
    net
}

/// Node `from` posts `payload` as is on the public chat's topic (signed by its key unless
/// `signed` is false).
fn post_raw(net: &mut Net, from: usize, chat: &str, payload: Vec<u8>, signed: bool) {
    let sub = PublicChats::subscription(chat);
    let params = whisper::MessageParams {
        payload,
        padding: None,
        sign_with: signed.then_some(net.nodes[from].chat_secret),
        topic: sub.topic,
        ttl_secs: 10,
        pow_target: 0.002,
    };
    let now = net.now;
    net.nodes[from].whisper.post(now, params, &sub.key).unwrap();
    net.advance(1_000);
}

#[test]
fn v036_messenger_send_public_message_is_accepted_and_its_bundle_stored() {
    let v: serde_json::Value = serde_json::from_str(GO_V036).unwrap();
    let mut net = alice_and_node1();
    let w = "public.messenger_send_wrapped";
    post_raw(
        &mut net,
        0,
        "hush-vectors",
        go_hex(&v, &format!("{w}.whisper_payload_hex")),
        true,
    );
    let got = net.received(1);
    assert_eq!(got.len(), 1, "{:?}", net.nodes[1].stats());
    assert_eq!(got[0].text, "hello public");
    assert_eq!(
        got[0].message_id.to_vec(),
        go_hex(&v, &format!("{w}.message_id"))
    );
    let alice = pubkey_from_wire(&net.nodes[0].public_key()).unwrap();
    let installs = net.nodes[1]
        .conversations()
        .security()
        .active_installations(net.now, &alice);
    assert_eq!(installs.len(), 1);
    assert_eq!(installs[0].installation_id, "alice-installation");
    // The bare copy (SendPublicRaw) of the same Transit is the same message.
    post_raw(
        &mut net,
        0,
        "hush-vectors",
        go_hex(&v, "public.transit_hex"),
        true,
    );
    assert_eq!(net.received(1).len(), 1);
    assert_eq!(net.nodes[1].stats().duplicates_dropped, 1);
    assert_eq!(net.nodes[1].stats().messages_rejected, 0);
}

#[test]
fn protobuf_public_message_is_accepted_and_auto_answers_in_protobuf() {
    let v: serde_json::Value = serde_json::from_str(GO_V0362).unwrap();
    let mut net = alice_and_node1();
    let chat = ChatTarget::Public("hush-vectors".into());
    assert_eq!(
        net.nodes[1].chat_format(&chat),
        Some((PayloadFormat::Transit, FormatSetting::Auto))
    );
    post_raw(
        &mut net,
        0,
        "hush-vectors",
        go_hex(&v, "public.whisper.payload_hex"),
        true,
    );
    let got = net.received(1);
    assert_eq!(got.len(), 1, "{:?}", net.nodes[1].stats());
    assert_eq!(got[0].message_id.to_vec(), go_hex(&v, "public.message_id"));
    // Node 1 now answers the chat in protobuf; node 0 (which only posted) sees it and
    // would answer in protobuf too.
    assert_eq!(
        net.nodes[1].chat_format(&chat),
        Some((PayloadFormat::Protobuf, FormatSetting::Auto))
    );
    net.command(1, send("hush-vectors", "reply"));
    net.advance(1_000);
    // (Node 0 also took back its raw post: it bypassed the node's own send path.)
    let replies: Vec<_> = net
        .received(0)
        .into_iter()
        .filter(|m| m.text == "reply")
        .collect();
    assert_eq!(replies.len(), 1);
    assert_eq!(
        net.nodes[0].chat_format(&chat),
        Some((PayloadFormat::Protobuf, FormatSetting::Auto))
    );
    // The choice survives a restart (it is a conversation record).
    assert!(net.persisted.iter().any(|(i, p)| *i == 1
        && matches!(p, Persist::Conversation(Record::ChatFormat(f)) if f.chat == "hush-vectors")));
}

#[test]
fn chat_format_override_per_chat_through_the_node() {
    let mut net = line(2);
    let k1 = net.nodes[1].chat_public_key();
    let k0 = net.nodes[0].chat_public_key();
    net.command(
        0,
        Command::SetChatFormat {
            chat: ChatTarget::Direct(k1),
            format: Some(FormatSetting::Protobuf),
        },
    );
    net.command(
        0,
        Command::SendDirect {
            to: k1,
            text: "in protobuf".into(),
        },
    );
    net.advance(2_000);
    assert_eq!(directs(&net, 1), vec!["in protobuf".to_string()]);
    // Node 1 learned the form from it (auto).
    assert_eq!(
        net.nodes[1].chat_format(&ChatTarget::Direct(k0)),
        Some((PayloadFormat::Protobuf, FormatSetting::Auto))
    );
    assert_eq!(
        net.nodes[0].chat_format(&ChatTarget::Direct(k1)),
        Some((PayloadFormat::Protobuf, FormatSetting::Protobuf))
    );
    // Clearing the override goes back to the node-wide setting (auto, nothing received).
    net.command(
        0,
        Command::SetChatFormat {
            chat: ChatTarget::Direct(k1),
            format: None,
        },
    );
    assert_eq!(
        net.nodes[0].chat_format(&ChatTarget::Direct(k1)),
        Some((PayloadFormat::Transit, FormatSetting::Auto))
    );
    // Unknown public chats and groups are refused.
    for chat in [
        ChatTarget::Public("not-joined".into()),
        ChatTarget::Group("no-such-group".into()),
    ] {
        assert!(matches!(
            net.nodes[0].handle_command(
                net.now,
                Command::SetChatFormat {
                    chat,
                    format: Some(FormatSetting::Transit)
                }
            ),
            Err(NodeError::UnknownChat(_))
        ));
    }
}

#[test]
fn public_chat_drops_are_counted_by_reason() {
    let v: serde_json::Value = serde_json::from_str(GO_V036).unwrap();
    let mut net = alice_and_node1();
    let chat_message = |chat: &str, clock: u64| {
        crate::chat::C4Message {
            text: "x".into(),
            content_type: "text/plain".into(),
            message_type: crate::chat::MessageType::PublicGroupUserMessage,
            clock,
            timestamp_ms: 1,
            content: crate::chat::C4Content {
                chat_id: chat.into(),
                text: "x".into(),
                ..Default::default()
            },
        }
        .encode()
    };
    let bad_sig = crate::chat::proto::ApplicationMetadataMessage {
        signature: vec![0; 65],
        payload: vec![0x08, 0x01],
        message_type: 0,
    };
    let mut tampered = <ProtocolMessage as prost::Message>::decode(
        go_hex(&v, "public.messenger_send_wrapped.whisper_payload_hex").as_slice(),
    )
    .unwrap();
    tampered.bundles[0].signature[3] ^= 1;
    let g5 = go_hex(&v, "group.membership_update.transit_hex");
    for payload in [
        b"[1,2".to_vec(),
        vec![0xff, 0xff],
        prost::Message::encode_to_vec(&bad_sig),
        g5,
        chat_message("another-chat", 1),
        chat_message("hush-vectors", u64::MAX / 2),
        prost::Message::encode_to_vec(&tampered),
    ] {
        post_raw(&mut net, 0, "hush-vectors", payload, true);
    }
    post_raw(
        &mut net,
        0,
        "hush-vectors",
        chat_message("hush-vectors", 2),
        false,
    );
    let s = net.nodes[1].stats();
    assert_eq!(
        [
            s.public_undecodable,
            s.public_undecodable_protobuf,
            s.public_bad_wrapper_signature,
            s.public_not_a_message,
            s.public_wrong_chat,
            s.public_unsafe_clock,
            s.public_bundles_rejected,
            s.public_unsigned,
        ],
        [1; 8],
        "{s:?}"
    );
    assert_eq!(s.messages_rejected, 8);
    assert!(net.received(1).is_empty());
}

#[test]
fn public_sends_wait_for_room_in_a_full_pool_and_all_arrive_once() {
    let small_pool = |_: usize| NodeConfig {
        whisper: whisper::Config {
            max_envelopes: 3,
            ..whisper::Config::default()
        },
        max_deferred_posts: 4,
        conversations: ConversationsConfig {
            publish_contact_code: false,
            ..ConversationsConfig::default()
        },
        ..NodeConfig::default()
    };
    let mut net = Net::with_config(2, small_pool);
    net.connect(0, 1);
    net.advance(100);
    net.command(0, join("status"));
    net.command(1, join("status"));
    // Three posts fill the pool, all awaited by node 1: the next four wait, in order.
    for i in 0..7 {
        net.command(0, send("status", &format!("m{i}")));
    }
    assert!(net.nodes[0].input_congested());
    assert_eq!(net.nodes[0].deferred_posts(), 4);
    assert_eq!(net.nodes[0].stats().posts_deferred, 4);
    // The queue is full: the next send is refused, not lost silently.
    let refused = net.nodes[0].handle_command(net.now, send("status", "m7"));
    assert_eq!(refused, Err(NodeError::Busy { max: 4 }));
    net.advance(5_000);
    assert!(!net.nodes[0].input_congested());
    // Each once (a gossip batch goes in hash order, so only the set is fixed).
    let mut texts: Vec<String> = net
        .received(1)
        .into_iter()
        .map(|m| m.text.clone())
        .collect();
    texts.sort();
    let expected: Vec<String> = (0..7).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, expected);
    assert_eq!(net.nodes[0].stats().deferred_posts_failed, 0);
    // Nothing of ours was evicted unsent: every post was pooled once and sent.
    let sent = net.nodes[0].whisper().stats().envelopes_sent;
    assert!(sent >= 7, "{sent}");
}

#[test]
fn a_send_queued_behind_a_full_pool_still_refuses_a_bad_chat_name_at_once() {
    let small_pool = |_: usize| NodeConfig {
        whisper: whisper::Config {
            max_envelopes: 1,
            ..whisper::Config::default()
        },
        conversations: ConversationsConfig {
            publish_contact_code: false,
            ..ConversationsConfig::default()
        },
        ..NodeConfig::default()
    };
    let mut net = Net::with_config(2, small_pool);
    net.connect(0, 1);
    net.advance(100);
    net.command(0, send("status", "fills the pool"));
    net.command(0, send("status", "waits"));
    assert_eq!(net.nodes[0].deferred_posts(), 1);
    let bad = net.nodes[0].handle_command(net.now, send("", "x"));
    assert!(bad.is_err(), "{bad:?}");
    assert_eq!(net.nodes[0].deferred_posts(), 1);
}
