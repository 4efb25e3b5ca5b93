//! Memory per pooled Whisper envelope, measured with a counting allocator (issue 14 item 4:
//! at most 1.5× the envelope's RLP; it was 3.3×).
//!
//! Every heap byte allocated and not freed on the test's own thread while the envelopes are
//! received counts: the pooled RLP, the pool's slab and indexes, the gossip queue of the peer
//! that has not been sent them yet. The counter is per thread, so tests running in parallel do
//! not disturb each other.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use hush_core::rng::{rng_from_seed, seed_from_u64};
use hush_core::whisper::{
    codes, encode_messages, wrap_symmetric, Config, Envelope, MessageParams, PowFormula,
    StatusPacket, Topic, Whisper,
};
use hush_core::Time;

thread_local! {
    /// Live heap bytes allocated by this thread (const-initialised, no destructor: usable from
    /// inside the allocator).
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn add_live(delta: isize) {
    let _ = LIVE_BYTES.try_with(|c| c.set(c.get() + delta));
}

fn live_bytes() -> isize {
    LIVE_BYTES.with(Cell::get)
}

struct Counting;

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        add_live(l.size() as isize);
        // SAFETY: same layout as given.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        add_live(-(l.size() as isize));
        // SAFETY: `p` was allocated by `System` with `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        add_live(new as isize - l.size() as isize);
        // SAFETY: `p` was allocated by `System` with `l`.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const NOW: Time = Time(1_600_000_000_000);
/// The bound the issue sets: bytes held per pooled envelope over its RLP length.
const MAX_OVERHEAD_RATIO: f64 = 1.5;

fn envelopes(n: usize, payload_len: usize) -> Vec<Envelope> {
    let mut rng = rng_from_seed(seed_from_u64(1));
    (0..n)
        .map(|i| {
            let mut payload = vec![0u8; payload_len];
            payload[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let p = MessageParams {
                payload,
                padding: None,
                sign_with: None,
                topic: Topic([(i % 7) as u8, 1, 2, 3]),
                ttl_secs: 50,
                pow_target: 0.0,
            };
            wrap_symmetric(
                &p,
                &[7; 32],
                NOW.as_secs() as u32,
                PowFormula::Current,
                0,
                0,
                &mut rng,
            )
            .unwrap()
        })
        .collect()
}

/// A node with two handshaken full-node peers.
fn node(capacity: usize) -> Whisper {
    let cfg = Config {
        min_pow: 0.0,
        max_envelopes: capacity,
        ..Config::default()
    };
    let mut w = Whisper::new(cfg, seed_from_u64(2), NOW);
    let status = StatusPacket {
        version: 6,
        min_pow: 0.0,
        bloom: None,
        light_node: false,
        confirmations_enabled: false,
        rate_limits: None,
    }
    .encode();
    for p in [1, 2] {
        w.handle_peer_connected(NOW, p);
        w.handle_peer_message(NOW, p, codes::STATUS, &status);
    }
    while w.poll_action().is_some() {}
    w
}

/// (bytes per pooled envelope with peer 2's queue full, the same after the gossip cycle sent
/// them to peer 2, RLP bytes per envelope).
fn measure(n: usize, payload_len: usize) -> (f64, f64, f64) {
    let envs = envelopes(n, payload_len);
    let rlp: usize = envs.iter().map(|e| e.encode().len()).sum();
    let packets: Vec<Vec<u8>> = envs.chunks(100).map(encode_messages).collect();
    drop(envs);
    let mut w = node(n);
    let before = live_bytes();
    for p in &packets {
        w.handle_peer_message(NOW, 1, codes::MESSAGES, p);
    }
    while w.poll_action().is_some() {}
    assert_eq!(w.pool_len(), n);
    let queued = (live_bytes() - before) as f64 / n as f64;
    w.handle_timeout(NOW.plus_millis(1_000));
    while w.poll_action().is_some() {}
    let forwarded = (live_bytes() - before) as f64 / n as f64;
    (queued, forwarded, rlp as f64 / n as f64)
}

#[test]
fn pooled_envelope_costs_at_most_one_and_a_half_times_its_rlp() {
    for (n, payload_len) in [(10_000, 200), (2_000, 1_000)] {
        let (queued, forwarded, rlp) = measure(n, payload_len);
        eprintln!(
            "{n} envelopes of {rlp:.0} B RLP: {queued:.0} B each while queued for a peer, \
             {forwarded:.0} B after the gossip cycle"
        );
        assert!(
            queued <= MAX_OVERHEAD_RATIO * rlp,
            "{queued:.0} B per pooled envelope of {rlp:.0} B (queued for a peer)"
        );
        assert!(
            forwarded <= MAX_OVERHEAD_RATIO * rlp,
            "{forwarded:.0} B per pooled envelope of {rlp:.0} B (after gossip)"
        );
        // Never less than the one copy of the RLP the pool must keep.
        assert!(
            forwarded >= rlp,
            "{forwarded:.0} B < {rlp:.0} B: not counted"
        );
    }
}
