//! Double Ratchet throughput beside the raw primitives it is built from, measured in the same
//! run, for both suites.
//!
//! Criterion groups give the detailed figures. The summary printed at the end compares each
//! ratchet operation with its **primitive bound**: the sum of the costs of exactly the raw
//! crate calls (no hush code) one step of that operation needs (docs/security.md §"Figures"):
//!
//! | step | status-go suite | modern suite |
//! |---|---|---|
//! | `KDF_CK` | 2 × HMAC-SHA256(CK, 1 byte) | same |
//! | message keys | HKDF-SHA256(0³², MK) → 80 B | HKDF-SHA256(0³², MK) → 44 B |
//! | cipher | AES-256-CTR over the payload + HMAC-SHA256 over AD ‖ IV ‖ ct | ChaCha20-Poly1305 over the payload, AD |
//! | DH step adds | parse the 33-byte key + 2 × ECDH + 1 key pair + 2 × HKDF(RK) → 96 B | 2 × X25519 + 1 key pair + 2 × HKDF(RK) → 64 B |
//!
//! Encrypt and decrypt of a symmetric step have the same bound; the DH step (on receive) is the
//! symmetric bound plus the DH line. "decrypt (sym., 1000 skipped stored)" is the symmetric
//! step with status-go's `MaxSkip` worth of skipped keys in the state: the same bound, so any
//! cost that grows with the store (copying or searching it per message) shows as a lower ratio. Each primitive is timed on its own with fresh key setup
//! per call, as a naive implementation would do it; the ratchet shares two key schedules the
//! bound pays for separately (`KDF_CK`'s two HMACs under one key, and the constant zero salt of
//! the message-key HKDF), so `bound / ours` may slightly exceed 1.
//!
//! Noise: the machine is a shared, loaded 2-core box. Every measurement is first calibrated to
//! rounds of about [`ROUND_NS`] (1 ms, short enough to usually run unpreempted), then all are
//! interleaved in [`ROUNDS`] rounds (every primitive and every operation once per round, so a
//! burst of load hits all of them alike). Each figure is the **best** round (the minimum
//! filters out interference); the median is printed beside it. Decrypt measurements consume
//! prepared messages (each decrypts once), which caps their calls per round.
//!
//! Benches are not core: wall-clock timing is allowed here (common2.md), hence the clippy allow.
//!
//! Run briefly: `cargo bench -p hush-core --bench security -- --warm-up-time 1 --measurement-time 2`
//! Summary only: `cargo bench -p hush-core --bench security -- summary-only`

#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::hint::black_box;
use std::time::Instant;

use aes::cipher::{KeyIvInit, StreamCipher};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use criterion::{criterion_group, Criterion};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use hush_core::rng::{rng_from_seed, seed_from_u64, Rng};
use hush_core::security::ratchet::{
    Header, RatchetLimits, RatchetState, Suite, MODERN_MSG_INFO, MODERN_RK_INFO, STATUS_MSG_INFO,
    STATUS_RK_INFO,
};
use rand_core::RngCore;
use secp256k1::{PublicKey, Secp256k1, SecretKey};
use sha2::Sha256;

const PLAINTEXT_BYTES: usize = 256;
const LIMITS: RatchetLimits = RatchetLimits {
    max_skip: 1000,
    max_skipped_keys: 2000,
    max_previous_chains: 64,
};
/// Interleaved measurement rounds; the best is reported.
const ROUNDS: usize = 41;
/// Target duration of one round. Short rounds, so that each has a fair chance to run without
/// being preempted on the shared machine, whatever the cost of one call.
const ROUND_NS: f64 = 1e6;
/// Prepared messages for each symmetric-step decrypt measurement (each is decrypted once).
const SYM_MSGS: usize = 30_000;
/// Prepared messages for each DH-step decrypt measurement.
const DH_MSGS: usize = 400;
/// No per-round cap (measurements that consume nothing).
const UNCAPPED: usize = usize::MAX;

// ------------------------------------------------------------------ raw primitives (no hush)

fn hkdf_into(salt: &[u8; 32], ikm: &[u8; 32], info: &[u8], out: &mut [u8]) {
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, out)
        .unwrap();
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    m.update(data);
    m.finalize().into_bytes().into()
}

fn aes_ctr(key: &[u8; 32], iv: &[u8; 16], buf: &mut [u8]) {
    ctr::Ctr128BE::<aes::Aes256>::new(key.into(), iv.into()).apply_keystream(buf);
}

fn chacha(key: &[u8; 32], nonce: &[u8; 12], pt: &[u8], ad: &[u8]) -> Vec<u8> {
    ChaCha20Poly1305::new(key.into())
        .encrypt(nonce.into(), Payload { msg: pt, aad: ad })
        .unwrap()
}

/// One raw primitive measurement: a name and a closure doing one call.
struct Prim<'a> {
    name: &'static str,
    /// Most calls per round (consumed fixtures: prepared messages / (ROUNDS + 1)).
    cap: usize,
    f: Box<dyn FnMut() + 'a>,
}

fn primitives<'a>(rng: &'a mut Rng) -> Vec<Prim<'a>> {
    let secp = Secp256k1::<secp256k1::All>::gen_new();
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    let sk = SecretKey::from_byte_array(&bytes).unwrap();
    rng.fill_bytes(&mut bytes);
    let pk = PublicKey::from_secret_key(&secp, &SecretKey::from_byte_array(&bytes).unwrap());
    let pk33 = pk.serialize();
    let x_sk = x25519_dalek::StaticSecret::from([5u8; 32]);
    let x_pk = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from([6u8; 32]));
    let mut buf = vec![0u8; PLAINTEXT_BYTES];
    let hmac_input = vec![0u8; 8 + 33 + 16 + PLAINTEXT_BYTES];
    let pt = vec![0u8; PLAINTEXT_BYTES];
    let ad40 = [0u8; 40];
    let rng = std::cell::RefCell::new(rng);
    let rng2 = std::rc::Rc::new(rng);
    let rng3 = rng2.clone();
    vec![
        Prim {
            name: "HMAC-SHA256(32B key, 1B)",
            cap: UNCAPPED,
            f: Box::new(|| {
                black_box(hmac(black_box(&[1; 32]), black_box(&[0x10])));
            }),
        },
        Prim {
            name: "HKDF-SHA256 80B (status msg keys)",
            cap: UNCAPPED,
            f: Box::new(|| {
                let mut out = [0u8; 80];
                hkdf_into(&[0; 32], black_box(&[2; 32]), STATUS_MSG_INFO, &mut out);
                black_box(out);
            }),
        },
        Prim {
            name: "HKDF-SHA256 96B (status KDF_RK)",
            cap: UNCAPPED,
            f: Box::new(|| {
                let mut out = [0u8; 96];
                hkdf_into(
                    black_box(&[1; 32]),
                    black_box(&[2; 32]),
                    STATUS_RK_INFO,
                    &mut out,
                );
                black_box(out);
            }),
        },
        Prim {
            name: "AES-256-CTR 256B (incl. key setup)",
            cap: UNCAPPED,
            f: Box::new(move || aes_ctr(&[1; 32], &[2; 16], black_box(&mut buf))),
        },
        Prim {
            name: "HMAC-SHA256 over AD|IV|ct (313B)",
            cap: UNCAPPED,
            f: Box::new(move || {
                black_box(hmac(black_box(&[1; 32]), black_box(&hmac_input)));
            }),
        },
        Prim {
            name: "secp256k1 parse compressed key",
            cap: UNCAPPED,
            f: Box::new(move || {
                black_box(PublicKey::from_slice(black_box(&pk33)).unwrap());
            }),
        },
        Prim {
            name: "secp256k1 ECDH (shared point)",
            cap: UNCAPPED,
            f: Box::new(move || {
                black_box(secp256k1::ecdh::shared_secret_point(
                    black_box(&pk),
                    black_box(&sk),
                ));
            }),
        },
        Prim {
            name: "secp256k1 key pair (+compress)",
            cap: UNCAPPED,
            f: Box::new(move || {
                let mut b = [0u8; 32];
                rng2.borrow_mut().fill_bytes(&mut b);
                let sk = SecretKey::from_byte_array(&b).unwrap();
                black_box(PublicKey::from_secret_key(&secp, &sk).serialize());
            }),
        },
        Prim {
            name: "HKDF-SHA256 44B (modern msg keys)",
            cap: UNCAPPED,
            f: Box::new(|| {
                let mut out = [0u8; 44];
                hkdf_into(&[0; 32], black_box(&[2; 32]), MODERN_MSG_INFO, &mut out);
                black_box(out);
            }),
        },
        Prim {
            name: "HKDF-SHA256 64B (modern KDF_RK)",
            cap: UNCAPPED,
            f: Box::new(|| {
                let mut out = [0u8; 64];
                hkdf_into(
                    black_box(&[1; 32]),
                    black_box(&[2; 32]),
                    MODERN_RK_INFO,
                    &mut out,
                );
                black_box(out);
            }),
        },
        Prim {
            name: "ChaCha20-Poly1305 256B, 40B AD",
            cap: UNCAPPED,
            f: Box::new(move || {
                black_box(chacha(&[1; 32], &[2; 12], black_box(&pt), black_box(&ad40)));
            }),
        },
        Prim {
            name: "X25519 DH",
            cap: UNCAPPED,
            f: Box::new(move || {
                black_box(black_box(&x_sk).diffie_hellman(black_box(&x_pk)));
            }),
        },
        Prim {
            name: "X25519 key pair",
            cap: UNCAPPED,
            f: Box::new(move || {
                let sk = x25519_dalek::StaticSecret::random_from_rng(&mut **rng3.borrow_mut());
                black_box(x25519_dalek::PublicKey::from(&sk));
            }),
        },
    ]
}

// ------------------------------------------------------------------ ratchet fixtures

fn pair(suite: Suite) -> (RatchetState, RatchetState, Rng) {
    let mut rng = rng_from_seed(seed_from_u64(1));
    let (b_secret, b_public) = suite.generate_dh(&mut rng);
    let a = RatchetState::new_initiator(suite, &[7; 32], &b_public, &mut rng).unwrap();
    let b = RatchetState::new_responder(suite, &[7; 32], &b_secret).unwrap();
    (a, b, rng)
}

/// In-order messages A→B (symmetric steps only for B after the first).
fn chain(suite: Suite, n: usize) -> (RatchetState, RatchetState, Rng, Vec<(Header, Vec<u8>)>) {
    let (mut a, mut b, mut rng) = pair(suite);
    let pt = vec![0u8; PLAINTEXT_BYTES];
    let (h, c) = a.encrypt(&pt, &[]).unwrap();
    b.decrypt(&LIMITS, &h, &c, &[], &mut rng).unwrap();
    let msgs = (0..n).map(|_| a.encrypt(&pt, &[]).unwrap()).collect();
    (a, b, rng, msgs)
}

/// In-order messages A→B after B stored `skipped` skipped keys (a gap A never delivered): the
/// symmetric step with a realistic skipped-key store in the state.
fn chain_after_gap(suite: Suite, skipped: usize, n: usize) -> Fixture {
    let (mut a, mut b, mut rng) = pair(suite);
    let pt = vec![0u8; PLAINTEXT_BYTES];
    for _ in 0..skipped {
        a.encrypt(&pt, &[]).unwrap();
    }
    let (h, c) = a.encrypt(&pt, &[]).unwrap();
    b.decrypt(&LIMITS, &h, &c, &[], &mut rng).unwrap();
    assert_eq!(b.skipped.len(), skipped);
    let msgs = (0..n).map(|_| a.encrypt(&pt, &[]).unwrap()).collect();
    (b, rng, msgs)
}

/// Skipped keys held in the state for the "skipped store" measurement (status-go's `MaxSkip`).
const STORED_SKIPPED: usize = 1000;

/// Ping-pong: every message B receives carries a new ratchet key (one DH step each).
fn dh_steps(suite: Suite, n: usize) -> Fixture {
    let (mut a, mut b, mut rng) = pair(suite);
    let pt = vec![0u8; PLAINTEXT_BYTES];
    let mut for_b = Vec::new();
    // Build the sequence with a shadow copy of B; the returned state and RNG are snapshots
    // from before, so replaying the messages regenerates the same ratchet keys.
    let b0 = b.clone();
    let rng0 = rng.clone();
    let mut rng_a = rng_from_seed(seed_from_u64(99));
    for _ in 0..n {
        let (h, c) = a.encrypt(&pt, &[]).unwrap();
        b.decrypt(&LIMITS, &h, &c, &[], &mut rng).unwrap();
        for_b.push((h, c));
        let (h, c) = b.encrypt(&pt, &[]).unwrap();
        a.decrypt(&LIMITS, &h, &c, &[], &mut rng_a).unwrap();
    }
    (b0, rng0, for_b)
}

// ------------------------------------------------------------------ criterion groups

fn bench_primitives(c: &mut Criterion) {
    let mut rng = rng_from_seed(seed_from_u64(2));
    let mut g = c.benchmark_group("primitive");
    for mut p in primitives(&mut rng) {
        g.bench_function(p.name, |b| b.iter(&mut p.f));
    }
    g.finish();
}

fn bench_ratchet(c: &mut Criterion) {
    for suite in [Suite::Status, Suite::Modern] {
        let name = format!("{suite:?}").to_lowercase();
        let mut g = c.benchmark_group(format!("ratchet_{name}"));
        let (mut a, _, _, _) = chain(suite, 0);
        let pt = vec![0u8; PLAINTEXT_BYTES];
        g.bench_function("encrypt_symmetric_256B", |b| {
            b.iter(|| a.encrypt(black_box(&pt), &[]).unwrap())
        });
        let (_, b0, _, msgs) = chain(suite, 1);
        let mut rng = rng_from_seed(seed_from_u64(3));
        g.bench_function("decrypt_symmetric_256B", |b| {
            b.iter_batched(
                || b0.clone(),
                |mut st| {
                    st.decrypt(&LIMITS, &msgs[0].0, &msgs[0].1, &[], &mut rng)
                        .unwrap()
                },
                criterion::BatchSize::SmallInput,
            )
        });
        let (b0, mut rng, msgs) = dh_steps(suite, 1);
        g.bench_function("decrypt_dh_step_256B", |b| {
            b.iter_batched(
                || b0.clone(),
                |mut st| {
                    st.decrypt(&LIMITS, &msgs[0].0, &msgs[0].1, &[], &mut rng)
                        .unwrap()
                },
                criterion::BatchSize::SmallInput,
            )
        });
        g.finish();
    }
}

// ------------------------------------------------------------------ same-run summary

/// Per-round ns/op of one measurement.
struct Series(Vec<f64>);

impl Series {
    fn best(&self) -> f64 {
        self.0.iter().copied().fold(f64::INFINITY, f64::min)
    }
    fn median(&self) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }
}

/// Warm-up and calibration: calls `f` for about two rounds' time (at most `cap` calls) and
/// returns the calls per round that take about [`ROUND_NS`].
fn calibrate(cap: usize, f: &mut dyn FnMut()) -> usize {
    let start = Instant::now();
    let mut calls = 0usize;
    while calls < cap && (calls < 3 || (start.elapsed().as_nanos() as f64) < 2.0 * ROUND_NS) {
        f();
        calls += 1;
    }
    let ns = start.elapsed().as_nanos() as f64 / calls.max(1) as f64;
    ((ROUND_NS / ns).ceil() as usize).clamp(1, cap)
}

fn time_round(iters: usize, f: &mut dyn FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed().as_nanos() as f64 / iters as f64
}

/// A receiver state, its RNG and the messages it will decrypt (each once).
type Fixture = (RatchetState, Rng, Vec<(Header, Vec<u8>)>);

/// The ratchet operations of one suite, each a closure doing one call on prepared input.
fn operations<'a>(suite: Suite, store: &'a mut Vec<Fixture>) -> Vec<Prim<'a>> {
    // Enough prepared messages for the warm-up round plus ROUNDS measured rounds.
    let sym_n = SYM_MSGS;
    let dh_n = DH_MSGS;
    let (a, b, rng, msgs) = chain(suite, sym_n);
    store.push((a, rng_from_seed(seed_from_u64(4)), Vec::new()));
    store.push((b, rng, msgs));
    store.push(chain_after_gap(suite, STORED_SKIPPED, sym_n));
    store.push(dh_steps(suite, dh_n));
    let mut it = store.iter_mut();
    let (a, _, _) = it.next().unwrap();
    let (b, rng_b, msgs_b) = it.next().unwrap();
    let (g, rng_g, msgs_g) = it.next().unwrap();
    let (c, rng_c, msgs_c) = it.next().unwrap();
    let pt = vec![0u8; PLAINTEXT_BYTES];
    let mut sym = msgs_b.iter();
    let mut gap = msgs_g.iter();
    let mut dh = msgs_c.iter();
    vec![
        Prim {
            name: "encrypt (symmetric step)",
            cap: UNCAPPED,
            f: Box::new(move || {
                black_box(a.encrypt(black_box(&pt), &[]).unwrap());
            }),
        },
        Prim {
            name: "decrypt (symmetric step)",
            cap: SYM_MSGS / (ROUNDS + 1),
            f: Box::new(move || {
                let (h, ct) = sym.next().unwrap();
                black_box(b.decrypt(&LIMITS, h, ct, &[], &mut *rng_b).unwrap());
            }),
        },
        Prim {
            name: "decrypt (sym., 1000 skipped stored)",
            cap: SYM_MSGS / (ROUNDS + 1),
            f: Box::new(move || {
                let (h, ct) = gap.next().unwrap();
                black_box(g.decrypt(&LIMITS, h, ct, &[], &mut *rng_g).unwrap());
            }),
        },
        Prim {
            name: "decrypt (DH step)",
            cap: DH_MSGS / (ROUNDS + 1),
            f: Box::new(move || {
                let (h, ct) = dh.next().unwrap();
                black_box(c.decrypt(&LIMITS, h, ct, &[], &mut *rng_c).unwrap());
            }),
        },
    ]
}

fn summary() {
    let mut store_s = Vec::new();
    let mut store_m = Vec::new();
    let mut rng = rng_from_seed(seed_from_u64(2));
    let mut prims = primitives(&mut rng);
    let n_prims = prims.len();
    let mut ops_s = operations(Suite::Status, &mut store_s);
    let mut ops_m = operations(Suite::Modern, &mut store_m);

    let mut all: Vec<&mut Prim> = prims
        .iter_mut()
        .chain(ops_s.iter_mut())
        .chain(ops_m.iter_mut())
        .collect();
    let mut series: Vec<Series> = all.iter().map(|_| Series(Vec::new())).collect();
    let iters: Vec<usize> = all.iter_mut().map(|p| calibrate(p.cap, &mut p.f)).collect();
    for _ in 0..ROUNDS {
        for ((p, s), n) in all.iter_mut().zip(series.iter_mut()).zip(&iters) {
            s.0.push(time_round(*n, &mut p.f));
        }
    }
    let names: Vec<&str> = all.iter().map(|p| p.name).collect();
    let best = |name: &str| series[names.iter().position(|n| *n == name).unwrap()].best();

    println!(
        "\n== security summary: {PLAINTEXT_BYTES}-byte plaintext, best of {ROUNDS} interleaved rounds \
         (median in brackets); loaded shared 2-core box =="
    );
    println!("raw primitives:");
    for (name, s) in names.iter().zip(&series).take(n_prims) {
        println!("  {name:38} {:>9.0} ns  [{:>9.0}]", s.best(), s.median());
    }

    let hmac1 = best("HMAC-SHA256(32B key, 1B)");
    let kdf_ck = 2.0 * hmac1;
    let sym_status = kdf_ck
        + best("HKDF-SHA256 80B (status msg keys)")
        + best("AES-256-CTR 256B (incl. key setup)")
        + best("HMAC-SHA256 over AD|IV|ct (313B)");
    let dh_status = sym_status
        + best("secp256k1 parse compressed key")
        + 2.0 * best("secp256k1 ECDH (shared point)")
        + best("secp256k1 key pair (+compress)")
        + 2.0 * best("HKDF-SHA256 96B (status KDF_RK)");
    let sym_modern =
        kdf_ck + best("HKDF-SHA256 44B (modern msg keys)") + best("ChaCha20-Poly1305 256B, 40B AD");
    let dh_modern = sym_modern
        + 2.0 * best("X25519 DH")
        + best("X25519 key pair")
        + 2.0 * best("HKDF-SHA256 64B (modern KDF_RK)");

    let offset = n_prims;
    for (suite, bounds, base) in [
        (
            "status-go suite",
            [sym_status, sym_status, sym_status, dh_status],
            offset,
        ),
        (
            "modern suite",
            [sym_modern, sym_modern, sym_modern, dh_modern],
            offset + 4,
        ),
    ] {
        println!("{suite}:");
        for (i, bound) in bounds.iter().enumerate() {
            let s = &series[base + i];
            let ours = s.best();
            println!(
                "  {:36} ours {:>8.0} msg/s ({ours:>7.0} ns [{:>7.0}]) | bound {:>8.0} msg/s ({bound:>7.0} ns) | ours/bound throughput = {:.2}",
                names[base + i],
                1e9 / ours,
                s.median(),
                1e9 / bound,
                bound / ours
            );
        }
    }
}

criterion_group!(benches, bench_primitives, bench_ratchet);

fn main() {
    // `-- summary-only` skips the criterion groups (quick same-run ratios).
    if !std::env::args().any(|a| a == "summary-only") {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
    summary();
}
