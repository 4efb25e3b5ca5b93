//! RLPx benchmark: handshakes/s and frame throughput (seal + open of 1 KiB and 64 KiB
//! messages) next to the primitives they are built from, measured in the same run:
//!
//! - handshake vs one secp256k1 ECDH (`ecdh_x`): printed as "ECDH-equivalents per handshake";
//! - frames vs the primitive bound: AES-256-CTR over the padded frame twice (seal encrypts,
//!   open decrypts) plus Keccak-256 absorbing the ciphertext twice (egress and ingress MAC).
//!   The MAC's per-frame AES blocks and digest finalisations are the codec's own overhead.
//!
//! Criterion groups run first; a summary with ratios follows (Instant loops, same binary).
//! Run briefly: `cargo bench -p hush-core --bench p2p -- --warm-up-time 1 --measurement-time 2`.

// A benchmark measures wall time: the clock ban of core (clippy.toml) does not apply here.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use aes::cipher::{KeyIvInit, StreamCipher};
use criterion::{Criterion, Throughput};
use hush_core::ecies::{ecdh_x, public_key, random_secret_key};
use hush_core::p2p::rlpx::{FrameCodec, Initiator, Responder, Secrets, MAX_FRAME_SIZE_BYTES};
use hush_core::rng::{rng_from_seed, seed_from_u64, Rng};
// The same Keccak backend as the codec (core/src/keccak.rs), used raw.
use keccak_asm::{Digest, Keccak256 as Keccak};

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

const SIZES: [(usize, &str); 2] = [(1024, "1KiB"), (64 * 1024, "64KiB")];

fn handshake(rng: &mut Rng) -> (Secrets, Secrets) {
    let ka = random_secret_key(rng);
    let kb = random_secret_key(rng);
    let init = Initiator::new(rng, ka, public_key(&kb));
    let resp = Responder::new(rng, kb);
    let auth_packet = init.auth_packet().to_vec();
    let (auth, format, _) = resp.read_auth(&auth_packet).unwrap().unwrap();
    let ack_packet = resp.ack_packet(rng, &auth, format);
    let (ack, _, _) = init.read_ack(&ack_packet).unwrap().unwrap();
    let a = init.finish(&ack, &ack_packet);
    let b = resp.finish(&auth, &auth_packet, &ack_packet).unwrap();
    (a, b)
}

struct FramePair {
    tx: FrameCodec,
    rx: FrameCodec,
    wire: Vec<u8>,
}

impl FramePair {
    fn new() -> Self {
        let (a, b) = handshake(&mut rng_from_seed(seed_from_u64(7)));
        FramePair {
            tx: FrameCodec::new(a, MAX_FRAME_SIZE_BYTES),
            rx: FrameCodec::new(b, MAX_FRAME_SIZE_BYTES),
            wire: Vec::new(),
        }
    }

    fn seal_open(&mut self, payload: &[u8]) -> usize {
        self.wire.clear();
        self.tx.seal(0x10, payload, &mut self.wire).unwrap();
        let (_, out) = self.rx.open(&mut self.wire).unwrap().unwrap();
        out.len()
    }
}

/// The primitive bound for one frame of `padded` bytes: CTR both ways + Keccak both ways.
struct Primitives {
    enc: Aes256Ctr,
    dec: Aes256Ctr,
    egress: Keccak,
    ingress: Keccak,
    buf: Vec<u8>,
}

impl Primitives {
    fn new() -> Self {
        let key = [7u8; 32];
        let iv = [0u8; 16];
        Primitives {
            enc: Aes256Ctr::new(&key.into(), &iv.into()),
            dec: Aes256Ctr::new(&key.into(), &iv.into()),
            egress: Keccak::new(),
            ingress: Keccak::new(),
            buf: Vec::new(),
        }
    }

    fn run(&mut self, payload: &[u8]) -> usize {
        // Frame bytes: 16-byte header + payload padded to 16.
        let padded = 16 + payload.len().div_ceil(16) * 16;
        self.buf.clear();
        self.buf.extend_from_slice(payload);
        self.buf.resize(padded, 0);
        self.enc.apply_keystream(&mut self.buf);
        Digest::update(&mut self.egress, &self.buf);
        Digest::update(&mut self.ingress, &self.buf);
        self.dec.apply_keystream(&mut self.buf);
        self.buf.len()
    }

    /// [`Primitives::run`] plus the MAC work RLPx itself mandates per frame and direction
    /// (rlpx.md §5): 4 Keccak digests of the running state and 2 AES-256 block encryptions
    /// (header MAC and frame MAC), i.e. the protocol's own floor.
    fn run_with_mac(&mut self, payload: &[u8], mac_cipher: &aes::Aes256) -> usize {
        use aes::cipher::BlockEncrypt;
        let n = self.run(payload);
        for k in [&self.egress, &self.ingress] {
            for _ in 0..4 {
                let out: [u8; 32] = k.clone().finalize().into();
                black_box(out);
            }
            for _ in 0..2 {
                let mut block = aes::Block::default();
                mac_cipher.encrypt_block(&mut block);
                black_box(block);
            }
        }
        n
    }
}

fn criterion_groups(c: &mut Criterion) {
    let mut rng = rng_from_seed(seed_from_u64(1));
    let mut g = c.benchmark_group("handshake");
    g.throughput(Throughput::Elements(1));
    g.bench_function("rlpx_full_handshake_both_sides", |b| {
        b.iter(|| black_box(handshake(&mut rng)))
    });
    let sk = random_secret_key(&mut rng);
    let pk = public_key(&random_secret_key(&mut rng));
    g.bench_function("primitive_ecdh", |b| b.iter(|| black_box(ecdh_x(&sk, &pk))));
    g.finish();

    let mut g = c.benchmark_group("frame_seal_open");
    for (size, name) in SIZES {
        let payload = vec![0xabu8; size];
        g.throughput(Throughput::Bytes(size as u64));
        let mut pair = FramePair::new();
        g.bench_function(format!("rlpx_{name}"), |b| {
            b.iter(|| black_box(pair.seal_open(&payload)))
        });
        let mut prim = Primitives::new();
        g.bench_function(format!("primitive_aesctr_keccak_{name}"), |b| {
            b.iter(|| black_box(prim.run(&payload)))
        });
    }
    g.finish();
}

/// Mean time per call of `f` over at least `budget`.
fn time_per_call(budget: Duration, mut f: impl FnMut()) -> Duration {
    for _ in 0..3 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed() < budget {
        f();
        n += 1;
    }
    start.elapsed() / n
}

fn summary() {
    let budget = Duration::from_millis(700);
    let mut rng = rng_from_seed(seed_from_u64(2));
    let hs = time_per_call(budget, || {
        black_box(handshake(&mut rng));
    });
    let sk = random_secret_key(&mut rng);
    let pk = public_key(&random_secret_key(&mut rng));
    let ecdh = time_per_call(budget, || {
        black_box(ecdh_x(&sk, &pk));
    });
    println!();
    println!("== p2p summary (same run; loaded shared 2-core box, figures are indicative) ==");
    println!(
        "handshake (initiator+responder): {:>9.0} handshakes/s  ({:?} each)",
        1.0 / hs.as_secs_f64(),
        hs
    );
    println!(
        "primitive ECDH:                  {:>9.0} ECDH/s        ({:?} each)",
        1.0 / ecdh.as_secs_f64(),
        ecdh
    );
    println!(
        "ratio: one full handshake = {:.1} ECDH-equivalents (both sides do ~9 EC ops: keygen x2, ECDH x6, sign, recover)",
        hs.as_secs_f64() / ecdh.as_secs_f64()
    );
    for (size, name) in SIZES {
        let payload = vec![0xabu8; size];
        let mut pair = FramePair::new();
        let ours = time_per_call(budget, || {
            black_box(pair.seal_open(&payload));
        });
        let mut prim = Primitives::new();
        let bound = time_per_call(budget, || {
            black_box(prim.run(&payload));
        });
        use aes::cipher::KeyInit;
        let mac_cipher = aes::Aes256::new(&[9u8; 32].into());
        let floor = time_per_call(budget, || {
            black_box(prim.run_with_mac(&payload, &mac_cipher));
        });
        let mib = |d: Duration| size as f64 / d.as_secs_f64() / (1024.0 * 1024.0);
        println!(
            "frame {name:>5} seal+open: {:>7.1} MiB/s | primitive bound (AES-CTR x2 + Keccak x2): {:>7.1} MiB/s, ratio {:>3.0}% | with RLPx's per-frame MAC digests: {:>7.1} MiB/s, ratio {:>3.0}%",
            mib(ours),
            mib(bound),
            100.0 * bound.as_secs_f64() / ours.as_secs_f64(),
            mib(floor),
            100.0 * floor.as_secs_f64() / ours.as_secs_f64()
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    criterion_groups(&mut c);
    c.final_summary();
    summary();
}
