//! Stable fallback of the libFuzzer runs: every target's function over each of its seeds,
//! then over `HUSH_FUZZ_RANDOM_INPUTS` (default 300) inputs per target from a seeded RNG —
//! random bytes, and seeds with bytes replaced, inserted or cut off — so a decoder panic or a
//! broken oracle fails `cargo test` on the stable toolchain. The RNG seed is fixed (change it
//! with `HUSH_FUZZ_SEED`); a failure names the target and the input in hex.

use rand::{Rng, SeedableRng};

const DEFAULT_RANDOM_INPUTS: usize = 300;

fn env_usize(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn run(name: &str, target: hush_core_fuzz::Target, input: &[u8]) {
    let result = std::panic::catch_unwind(|| target(input));
    if result.is_err() {
        panic!("target {name} panicked on input {}", hex::encode(input));
    }
}

/// A random input: fresh bytes, or a seed mutated a few times.
fn random_input(rng: &mut impl Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    if seeds.is_empty() || rng.gen_bool(0.25) {
        let mut data = vec![0u8; rng.gen_range(0..600)];
        rng.fill_bytes(&mut data);
        return data;
    }
    let mut data = seeds[rng.gen_range(0..seeds.len())].clone();
    for _ in 0..rng.gen_range(1..4) {
        match rng.gen_range(0..4) {
            0 if !data.is_empty() => {
                let i = rng.gen_range(0..data.len());
                data[i] = rng.gen();
            }
            1 if !data.is_empty() => {
                let i = rng.gen_range(0..data.len());
                data[i] ^= 1 << rng.gen_range(0..8);
            }
            2 => {
                let i = rng.gen_range(0..=data.len());
                data.insert(i, rng.gen());
            }
            _ => {
                let cut = rng.gen_range(0..=data.len());
                data.truncate(cut);
            }
        }
    }
    data
}

#[test]
fn every_target_survives_its_seeds_and_random_inputs() {
    let n = env_usize("HUSH_FUZZ_RANDOM_INPUTS", DEFAULT_RANDOM_INPUTS as u64) as usize;
    let seed = env_usize("HUSH_FUZZ_SEED", 0x5eed);
    for (i, (name, target)) in hush_core_fuzz::TARGETS.iter().enumerate() {
        let seeds = hush_core_fuzz::seeds::seeds(name);
        assert!(!seeds.is_empty(), "target {name} has no seeds");
        for s in &seeds {
            run(name, *target, s);
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed + i as u64);
        for _ in 0..n {
            let input = random_input(&mut rng, &seeds);
            run(name, *target, &input);
        }
        run(name, *target, &[]);
    }
}

#[test]
fn every_binary_is_a_listed_target() {
    let manifest = include_str!("../Cargo.toml");
    let bins: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|n| *n != "hush-core-fuzz")
        .collect();
    let listed: Vec<&str> = hush_core_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(bins, listed, "Cargo.toml [[bin]]s and TARGETS differ");
}

/// The node target's prelude works: its seeds get a peer past the handshake and Hello, and
/// the chat-envelope seed delivers public chat messages (so fuzz bytes reach that deep).
#[test]
fn node_seeds_reach_the_peer_and_chat_layers() {
    use hush_core::node::Event;
    let events: Vec<Event> = hush_core_fuzz::seeds::seeds("node")
        .iter()
        .flat_map(|s| hush_core_fuzz::p2p::node_events(s))
        .collect();
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::PeerConnected { .. })));
    let received = events
        .iter()
        .filter(|e| matches!(e, Event::MessageReceived(_)))
        .count();
    assert_eq!(
        received, 3,
        "the three chat payloads of the seed are delivered"
    );
}
