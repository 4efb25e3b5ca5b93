use super::*;
use crate::net::NetConfig;
use proptest::prelude::*;
use std::collections::VecDeque;

/// What a [`Recorder`] was handed.
#[derive(Clone, Debug, PartialEq)]
enum Input {
    Conn(u64, ConnId, Direction),
    Bytes(u64, ConnId, Vec<u8>),
    Closed(u64, ConnId),
    Timeout(u64),
}

/// A scripted host: `SendPublicMessage { text }` is a script line:
/// `send:<payload>` sends the payload on every connection, `close` closes them all,
/// `timer:<ms>` sets the deadline to `ms` after the epoch (`timer:` clears it). Everything the
/// host is handed is logged with its time.
struct Recorder {
    key: NodePublicKey,
    conns: Vec<ConnId>,
    log: Vec<Input>,
    actions: VecDeque<Action>,
    deadline: Option<Time>,
}

impl Recorder {
    fn new(id: u8) -> Recorder {
        Recorder {
            key: [id; 64],
            conns: vec![],
            log: vec![],
            actions: VecDeque::new(),
            deadline: None,
        }
    }
}

impl Host for Recorder {
    fn public_key(&self) -> NodePublicKey {
        self.key
    }
    fn handle_connection(
        &mut self,
        now: Time,
        conn: ConnId,
        direction: Direction,
    ) -> Result<(), hush_core::node::NodeError> {
        self.conns.push(conn);
        self.log.push(Input::Conn(now.0, conn, direction));
        Ok(())
    }
    fn handle_bytes(&mut self, now: Time, conn: ConnId, bytes: &[u8]) {
        self.log.push(Input::Bytes(now.0, conn, bytes.to_vec()));
    }
    fn handle_connection_closed(&mut self, now: Time, conn: ConnId) {
        self.log.push(Input::Closed(now.0, conn));
    }
    fn handle_command(
        &mut self,
        _now: Time,
        command: Command,
    ) -> Result<(), hush_core::node::NodeError> {
        let Command::SendPublicMessage { text, .. } = command else {
            return Ok(());
        };
        if let Some(payload) = text.strip_prefix("send:") {
            for &conn in &self.conns {
                self.actions.push_back(Action::Send {
                    conn,
                    bytes: payload.as_bytes().to_vec(),
                });
            }
        } else if text == "close" {
            for &conn in &self.conns {
                self.actions.push_back(Action::Close { conn });
            }
        } else if let Some(ms) = text.strip_prefix("timer:") {
            self.deadline = ms.parse().ok().map(Time);
        }
        Ok(())
    }
    fn handle_timeout(&mut self, now: Time) {
        if self.deadline.is_some_and(|d| d <= now) {
            self.deadline = None;
            self.log.push(Input::Timeout(now.0));
        }
    }
    fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }
    fn poll_timeout(&self) -> Option<Time> {
        self.deadline
    }
}

fn script(text: &str) -> Command {
    Command::SendPublicMessage {
        chat: "c".into(),
        text: text.into(),
    }
}

/// Two recorders, fixed 50 ms latency, node 0 dials node 1 at t = 0. Returns the sim and
/// the dialer's and listener's connection ids (both 1: each node's first).
fn pair() -> Sim<Recorder> {
    let net = Network::new(
        NetConfig {
            latency_min_ms: 50,
            latency_max_ms: 50,
        },
        [0; 32],
    );
    let mut sim = Sim::new(Time(0), vec![Recorder::new(0xa), Recorder::new(0xb)], net);
    sim.connect(Time(0), 0, 1).unwrap();
    sim
}

fn log(sim: &Sim<Recorder>, node: usize) -> &[Input] {
    &sim.host(node).unwrap().log
}

#[test]
fn queue_orders_by_time_then_push_order() {
    let mut q = EventQueue::new();
    q.push(Time(30), "c");
    q.push(Time(10), "a1");
    q.push(Time(20), "b");
    q.push(Time(10), "a2");
    q.push(Time(10), "a3");
    assert_eq!(q.len(), 5);
    assert_eq!(q.peek_time(), Some(Time(10)));
    let order: Vec<&str> = std::iter::from_fn(|| q.pop().map(|(_, _, x)| x)).collect();
    assert_eq!(order, ["a1", "a2", "a3", "b", "c"]);
    assert!(q.is_empty());
}

/// Slots are reused after pops; interleaved pushes and pops still give (time, push order).
#[test]
fn queue_reuses_slots_and_keeps_order_when_interleaved() {
    let mut q = EventQueue::new();
    let mut want = Vec::new();
    let mut got = Vec::new();
    for round in 0..50u64 {
        for k in 0..4u64 {
            let t = Time(round * 10 + (k * 7) % 13);
            let seq = q.push(t, (t, round, k));
            want.push((t, seq));
        }
        for _ in 0..3 {
            let (t, seq, item) = q.pop().unwrap();
            assert_eq!(item.0, t);
            got.push((t, seq));
        }
    }
    while let Some((t, seq, _)) = q.pop() {
        got.push((t, seq));
    }
    // Each pop is the minimum of what was queued then: globally, per time, push order holds,
    // and nothing is lost or duplicated.
    assert_eq!(got.len(), want.len());
    let mut sorted = got.clone();
    sorted.sort();
    want.sort();
    assert_eq!(sorted, want);
    assert_eq!(q.len(), 0);
    assert!(q.is_empty() && q.peek().is_none());
}

#[test]
fn dialer_opens_at_once_listener_after_latency() {
    let mut sim = pair();
    assert_eq!(sim.run_until(Time(1_000), 100), RunOutcome::Drained);
    assert_eq!(
        log(&sim, 0),
        [Input::Conn(0, 1, Direction::Outbound { remote: [0xb; 64] })]
    );
    assert_eq!(log(&sim, 1), [Input::Conn(50, 1, Direction::Inbound)]);
    assert_eq!(sim.events(), 2);
}

#[test]
fn bytes_arrive_after_latency_in_order_per_direction() {
    let mut sim = pair();
    for i in 0..20u64 {
        // Several sends at the same instant and at increasing times, both directions.
        sim.schedule_command(Time(10 + i / 3), 0, script(&format!("send:a{i}")))
            .unwrap();
        sim.schedule_command(Time(60 + i / 4), 1, script(&format!("send:b{i}")))
            .unwrap();
    }
    sim.run_until(Time(10_000), 1_000);
    let got_at_1: Vec<(u64, Vec<u8>)> = log(&sim, 1)
        .iter()
        .filter_map(|x| match x {
            Input::Bytes(t, 1, b) => Some((*t, b.clone())),
            _ => None,
        })
        .collect();
    let want: Vec<(u64, Vec<u8>)> = (0..20u64)
        .map(|i| (60 + i / 3, format!("a{i}").into_bytes()))
        .collect();
    assert_eq!(got_at_1, want);
    let got_at_0: Vec<Vec<u8>> = log(&sim, 0)
        .iter()
        .filter_map(|x| match x {
            Input::Bytes(_, 1, b) => Some(b.clone()),
            _ => None,
        })
        .collect();
    let want: Vec<Vec<u8>> = (0..20).map(|i| format!("b{i}").into_bytes()).collect();
    assert_eq!(got_at_0, want);
    assert_eq!(
        sim.metrics().per_node[0].bytes_up,
        sim.metrics().per_node[1].bytes_down
    );
}

#[test]
fn bytes_sent_before_the_listener_opens_are_not_lost() {
    // The dialer sends at t = 0, right when it opens; the listener opens at t = 50 and the
    // bytes arrive at t = 50 too, after the open.
    let mut sim = pair();
    sim.schedule_command(Time(0), 0, script("send:early"))
        .unwrap();
    sim.run_until(Time(1_000), 100);
    assert_eq!(
        log(&sim, 1),
        [
            Input::Conn(50, 1, Direction::Inbound),
            Input::Bytes(50, 1, b"early".to_vec())
        ]
    );
}

#[test]
fn close_reaches_local_at_once_and_remote_after_latency_behind_bytes() {
    let mut sim = pair();
    sim.schedule_command(Time(100), 0, script("send:last"))
        .unwrap();
    sim.schedule_command(Time(100), 0, script("close")).unwrap();
    // Node 1 sends before learning of the close: dropped at node 0's closed end.
    sim.schedule_command(Time(120), 1, script("send:late"))
        .unwrap();
    // Node 0 sending after its close is dropped at once.
    sim.schedule_command(Time(130), 0, script("send:after"))
        .unwrap();
    // Node 1 closing after it was told is a no-op.
    sim.schedule_command(Time(200), 1, script("close")).unwrap();
    sim.run_until(Time(10_000), 1_000);
    assert_eq!(
        log(&sim, 0),
        [
            Input::Conn(0, 1, Direction::Outbound { remote: [0xb; 64] }),
            Input::Closed(100, 1)
        ]
    );
    assert_eq!(
        log(&sim, 1),
        [
            Input::Conn(50, 1, Direction::Inbound),
            Input::Bytes(150, 1, b"last".to_vec()),
            Input::Closed(150, 1)
        ]
    );
    let c = sim.counters();
    assert_eq!(c.dropped_deliveries, 1);
    assert_eq!(c.dropped_sends, 1);
    assert_eq!(c.bytes_dropped, 4 + 5);
    let link = &sim.net().links()[0];
    assert!(link.ends.iter().all(|e| e.state == EndState::Closed));
}

#[test]
fn simultaneous_close_notifies_each_side_once() {
    let mut sim = pair();
    sim.schedule_command(Time(100), 0, script("close")).unwrap();
    sim.schedule_command(Time(100), 1, script("close")).unwrap();
    sim.run_until(Time(10_000), 1_000);
    assert_eq!(log(&sim, 0).last(), Some(&Input::Closed(100, 1)));
    assert_eq!(log(&sim, 1).last(), Some(&Input::Closed(100, 1)));
    assert_eq!(log(&sim, 0).len() + log(&sim, 1).len(), 4);
}

#[test]
fn one_live_timer_per_node_and_stale_ones_are_skipped() {
    let net = Network::new(
        NetConfig {
            latency_min_ms: 1,
            latency_max_ms: 1,
        },
        [0; 32],
    );
    let mut sim = Sim::new(Time(0), vec![Recorder::new(1)], net);
    sim.schedule_command(Time(0), 0, script("timer:100"))
        .unwrap();
    // Moved later before it fires: the t = 100 timer is stale.
    sim.schedule_command(Time(50), 0, script("timer:300"))
        .unwrap();
    // Moved earlier: the t = 300 timer is stale.
    sim.schedule_command(Time(60), 0, script("timer:200"))
        .unwrap();
    // An overdue deadline fires at once (never in the past).
    sim.schedule_command(Time(400), 0, script("timer:10"))
        .unwrap();
    assert_eq!(sim.run_until(Time(10_000), 1_000), RunOutcome::Drained);
    assert_eq!(log(&sim, 0), [Input::Timeout(200), Input::Timeout(400)]);
    assert_eq!(sim.counters().stale_timers, 2);
    // 4 commands + 2 live timers.
    assert_eq!(sim.events(), 6);
}

#[test]
fn run_until_stops_at_end_and_at_the_cap() {
    let mut sim = pair();
    assert_eq!(sim.run_until(Time(10), 100), RunOutcome::ReachedEnd);
    assert_eq!(sim.now(), Time(10));
    assert_eq!(sim.events(), 1);
    assert_eq!(sim.run_until(Time(1_000), 1), RunOutcome::EventCap);
    assert_eq!(sim.run_until(Time(1_000), 2), RunOutcome::Drained);
    assert_eq!(sim.now(), Time(1_000));
}

#[test]
fn caller_misuse_is_an_error() {
    let mut sim = pair();
    assert_eq!(
        sim.connect(Time(0), 0, 0),
        Err(EngineError::SelfConnection(0))
    );
    assert_eq!(sim.connect(Time(0), 0, 5), Err(EngineError::NoSuchNode(5)));
    sim.run_until(Time(100), 100);
    assert_eq!(
        sim.schedule_command(Time(5), 0, script("x")),
        Err(EngineError::InThePast {
            at: Time(5),
            now: Time(100)
        })
    );
}

#[test]
fn unknown_connections_in_actions_are_counted() {
    let net = Network::new(
        NetConfig {
            latency_min_ms: 1,
            latency_max_ms: 1,
        },
        [0; 32],
    );
    let mut h = Recorder::new(1);
    h.conns.push(77);
    let mut sim = Sim::new(Time(0), vec![h], net);
    sim.schedule_command(Time(0), 0, script("send:x")).unwrap();
    sim.schedule_command(Time(0), 0, script("close")).unwrap();
    sim.run_until(Time(10), 100);
    assert_eq!(sim.counters().invalid_actions, 2);
}

#[test]
fn run_until_never_passes_end_behind_a_stale_timer() {
    let net = Network::new(
        NetConfig {
            latency_min_ms: 1,
            latency_max_ms: 1,
        },
        [0; 32],
    );
    let mut sim = Sim::new(Time(0), vec![Recorder::new(1)], net);
    sim.schedule_command(Time(0), 0, script("timer:100"))
        .unwrap();
    // Moved later: the t = 100 timer is stale, the live one is at 300.
    sim.schedule_command(Time(50), 0, script("timer:300"))
        .unwrap();
    assert_eq!(sim.run_until(Time(150), 1_000), RunOutcome::ReachedEnd);
    assert_eq!(sim.now(), Time(150), "the t = 300 timer must not run");
    assert_eq!(log(&sim, 0).len(), 0);
    // Scheduling at the end time is still possible (the runner relies on it).
    sim.schedule_command(Time(150), 0, script("timer:300"))
        .unwrap();
    let mut q: EventQueue<u8> = EventQueue::new();
    q.push(Time(5), 1);
    q.push(Time(3), 2);
    assert_eq!(q.peek(), Some((Time(3), &2)));
}

proptest! {
    /// Against a reference (a sorted list of `(time, seq)`): any interleaving of pushes at any
    /// times (earlier than queued ones too) and pops gives exactly the `(time, seq)` order,
    /// `peek` agrees with `pop`, and `len` counts what is queued.
    #[test]
    fn queue_matches_sorted_reference(ops in proptest::collection::vec((0u64..40, any::<bool>()), 0..300)) {
        let mut q = EventQueue::new();
        let mut reference: Vec<(Time, u64)> = Vec::new();
        for (t, pop) in ops {
            if pop {
                reference.sort();
                let want = if reference.is_empty() { None } else { Some(reference.remove(0)) };
                let peeked = q.peek().map(|(time, item)| (time, *item));
                let got = q.pop().map(|(time, seq, item)| {
                    prop_assert_eq!(seq, item);
                    Ok((time, seq))
                }).transpose()?;
                prop_assert_eq!(got, want);
                prop_assert_eq!(peeked, want);
            } else {
                let next = q.next_seq;
                let seq = q.push(Time(t), next);
                prop_assert_eq!(seq, next);
                reference.push((Time(t), seq));
            }
            prop_assert_eq!(q.len(), reference.len());
            prop_assert_eq!(q.is_empty(), reference.is_empty());
            reference.sort();
            prop_assert_eq!(q.peek_time(), reference.first().map(|(t, _)| *t));
        }
    }
}
