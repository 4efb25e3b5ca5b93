//! Double Ratchet throughput beside the raw primitives it is built from, measured in the same
//! run. Criterion groups give the detailed figures; a summary printed at the end compares each
//! ratchet operation with the sum of its primitive costs (the "primitive bound").
//!
//! Benches are not core: wall-clock timing is allowed here (common2.md), hence the clippy allow.
//!
//! Run briefly: `cargo bench -p hush-core --bench security -- --warm-up-time 1 --measurement-time 2`

#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::hint::black_box;
use std::time::Instant;

use aes::cipher::{KeyIvInit, StreamCipher};
use criterion::{criterion_group, Criterion};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use hush_core::ecies::{ecdh_x, public_key, random_secret_key};
use hush_core::rng::{rng_from_seed, seed_from_u64, Rng};
use hush_core::security::ratchet::{Header, RatchetLimits, RatchetState, Suite};
use sha2::Sha256;

const PLAINTEXT_BYTES: usize = 256;
const LIMITS: RatchetLimits = RatchetLimits {
    max_skip: 1000,
    max_skipped_keys: 2000,
    max_previous_chains: 64,
};

fn hkdf96(salt: &[u8; 32], ikm: &[u8; 32]) -> [u8; 96] {
    let mut out = [0u8; 96];
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(b"rsZUpEuXUqqwXBvSy3EcievAh4cMj6QL", &mut out)
        .unwrap();
    out
}

fn hkdf80(ikm: &[u8; 32]) -> [u8; 80] {
    let mut out = [0u8; 80];
    Hkdf::<Sha256>::new(Some(&[0u8; 32]), ikm)
        .expand(b"pcwSByyx2CRdryCffXJwy7xgVZWtW5Sh", &mut out)
        .unwrap();
    out
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    m.update(data);
    m.finalize().into_bytes().into()
}

fn aes_ctr(buf: &mut [u8]) {
    ctr::Ctr128BE::<aes::Aes256>::new(&[1u8; 32].into(), &[2u8; 16].into()).apply_keystream(buf);
}

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

/// Ping-pong: every message B receives carries a new ratchet key (one DH step each).
fn dh_steps(suite: Suite, n: usize) -> (RatchetState, Rng, Vec<(Header, Vec<u8>)>) {
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

/// Best of [`REPS`] timed rounds of `iters` calls (after `iters / 10` warm-up calls): the
/// minimum filters out interference from other processes on the shared machine. Calls `f`
/// `iters * (REPS + 0.1)` times in total.
fn ns_per_op(iters: u64, mut f: impl FnMut()) -> f64 {
    for _ in 0..iters / 10 {
        f();
    }
    (0..REPS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            start.elapsed().as_nanos() as f64 / iters as f64
        })
        .fold(f64::INFINITY, f64::min)
}

const REPS: u64 = 5;

fn bench_primitives(c: &mut Criterion) {
    let mut g = c.benchmark_group("primitive");
    g.bench_function("hkdf_sha256_96B", |b| {
        b.iter(|| hkdf96(black_box(&[1; 32]), black_box(&[2; 32])))
    });
    g.bench_function("hmac_sha256_32B", |b| {
        b.iter(|| hmac(black_box(&[1; 32]), black_box(&[0x10])))
    });
    let mut buf = vec![0u8; PLAINTEXT_BYTES];
    g.bench_function("aes256ctr_256B", |b| {
        b.iter(|| aes_ctr(black_box(&mut buf)))
    });
    let mut rng = rng_from_seed(seed_from_u64(2));
    let sk = random_secret_key(&mut rng);
    let pk = public_key(&random_secret_key(&mut rng));
    g.bench_function("ecdh_secp256k1", |b| {
        b.iter(|| ecdh_x(black_box(&sk), black_box(&pk)))
    });
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

/// Same-run summary: each ratchet operation against the sum of the primitive calls it makes.
fn summary() {
    const N: u64 = 20_000;
    let mut buf = vec![0u8; PLAINTEXT_BYTES];
    let t_hkdf96 = ns_per_op(N, || {
        black_box(hkdf96(black_box(&[1; 32]), black_box(&[2; 32])));
    });
    let t_hkdf80 = ns_per_op(N, || {
        black_box(hkdf80(black_box(&[1; 32])));
    });
    let t_hmac = ns_per_op(N, || {
        black_box(hmac(black_box(&[1; 32]), black_box(&[0x10])));
    });
    let ad_ct = vec![0u8; 41 + 16 + PLAINTEXT_BYTES];
    let t_hmac_msg = ns_per_op(N, || {
        black_box(hmac(black_box(&[1; 32]), black_box(&ad_ct)));
    });
    let t_aes = ns_per_op(N, || aes_ctr(black_box(&mut buf)));
    let mut rng = rng_from_seed(seed_from_u64(2));
    let sk = random_secret_key(&mut rng);
    let pk = public_key(&random_secret_key(&mut rng));
    let t_ecdh = ns_per_op(N / 10, || {
        black_box(ecdh_x(black_box(&sk), black_box(&pk)));
    });
    let t_keygen = ns_per_op(N / 10, || {
        black_box(public_key(&random_secret_key(&mut rng)).serialize());
    });

    // Status suite symmetric step: KDF_CK (2 HMAC) + HKDF(80) + AES-CTR + HMAC(AD ‖ c).
    let bound_sym = 2.0 * t_hmac + t_hkdf80 + t_aes + t_hmac_msg;
    // DH step on receive: 2 ECDH + 1 key generation + 2 KDF_RK + the symmetric step.
    let bound_dh = 2.0 * t_ecdh + t_keygen + 2.0 * t_hkdf96 + bound_sym;

    let pt = vec![0u8; PLAINTEXT_BYTES];
    let (mut a, _, _, _) = chain(Suite::Status, 0);
    let t_enc = ns_per_op(N, || {
        black_box(a.encrypt(&pt, &[]).unwrap());
    });
    let (_, mut b, mut rng2, msgs) = chain(Suite::Status, (N * (REPS + 1)) as usize);
    let mut it = msgs.iter();
    let t_dec = ns_per_op(N, || {
        let (h, c) = it.next().unwrap();
        black_box(b.decrypt(&LIMITS, h, c, &[], &mut rng2).unwrap());
    });
    const M: u64 = 300;
    let (mut b, mut rng3, msgs) = dh_steps(Suite::Status, (M * (REPS + 1)) as usize);
    let mut it = msgs.iter();
    let t_dh = ns_per_op(M, || {
        let (h, c) = it.next().unwrap();
        black_box(b.decrypt(&LIMITS, h, c, &[], &mut rng3).unwrap());
    });

    println!("\n== security summary (status-go suite, {PLAINTEXT_BYTES}-byte plaintext; loaded shared 2-core box) ==");
    println!("primitives: HKDF-96B {t_hkdf96:.0} ns | HKDF-80B {t_hkdf80:.0} ns | HMAC-32B {t_hmac:.0} ns | HMAC-msg {t_hmac_msg:.0} ns | AES-256-CTR {t_aes:.0} ns | ECDH {t_ecdh:.0} ns | keygen {t_keygen:.0} ns");
    for (name, ours, bound) in [
        ("encrypt (symmetric step)", t_enc, bound_sym),
        ("decrypt (symmetric step)", t_dec, bound_sym),
        ("decrypt (DH step)", t_dh, bound_dh),
    ] {
        println!(
            "{name:26} {:>9.0} msg/s  ({ours:.0} ns) | primitive bound {:>9.0} msg/s ({bound:.0} ns) | ours/bound throughput = {:.2}",
            1e9 / ours,
            1e9 / bound,
            bound / ours
        );
    }
}

criterion_group!(benches, bench_primitives, bench_ratchet);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
