//! Keccak-256 implementations side by side (issue 7, scale rounds 2 and 3): `tiny-keccak` (what
//! `hush_core::keccak` and the RLPx MAC used until round 3), `keccak-asm` (assembly backends,
//! the crate behind alloy's `asm-keccak`; what `hush_core::keccak` uses now) and RustCrypto's
//! `sha3`, plus `hush_core::keccak` itself (its ratio shows the wrapper costs nothing).
//!
//! Two uses are measured, the two the node makes:
//! - one-shot `keccak256` of 32, 64, 136, 256 and 1,024 bytes (topics, envelope hashes, PoW);
//! - the RLPx MAC's incremental use (rlpx.md §5): a running state absorbs 16 bytes, then a
//!   digest of the running state is taken without finalising it (a clone, then finalise).
//!
//! Criterion groups run first; a summary with each crate's ns/op and the ratio to tiny-keccak
//! follows (Instant loops, same binary). Figures come from a loaded, shared 2-core box.
//! Run briefly: `cargo bench -p hush-core --bench keccak -- --warm-up-time 1 --measurement-time 2`.

// A benchmark measures wall time: the clock ban of core (clippy.toml) does not apply here.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use keccak_asm::Digest as _;
use tiny_keccak::{Hasher, Keccak};

const SIZES: [usize; 5] = [32, 64, 136, 256, 1024];

fn tiny(data: &[u8]) -> [u8; 32] {
    let mut k = Keccak::v256();
    k.update(data);
    let mut out = [0u8; 32];
    k.finalize(&mut out);
    out
}

fn asm(data: &[u8]) -> [u8; 32] {
    keccak_asm::Keccak256::digest(data).into()
}

fn rustcrypto(data: &[u8]) -> [u8; 32] {
    <sha3::Keccak256 as sha3::Digest>::digest(data).into()
}

/// One MAC step as the RLPx codec makes it: absorb 16 bytes, digest the running state.
fn tiny_mac(k: &mut Keccak, block: &[u8; 16]) -> [u8; 32] {
    k.update(block);
    let mut out = [0u8; 32];
    k.clone().finalize(&mut out);
    out
}

fn asm_mac(k: &mut keccak_asm::Keccak256, block: &[u8; 16]) -> [u8; 32] {
    keccak_asm::Digest::update(k, block);
    keccak_asm::Digest::finalize(k.clone()).into()
}

fn rustcrypto_mac(k: &mut sha3::Keccak256, block: &[u8; 16]) -> [u8; 32] {
    sha3::Digest::update(k, block);
    sha3::Digest::finalize(k.clone()).into()
}

/// Mean ns per call of `f` over about `budget`.
fn ns_per_op(budget: Duration, mut f: impl FnMut()) -> f64 {
    for _ in 0..1_000 {
        f();
    }
    let mut n: u64 = 0;
    let start = Instant::now();
    while start.elapsed() < budget {
        for _ in 0..1_000 {
            f();
        }
        n += 1_000;
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn criterion_groups(c: &mut Criterion) {
    for size in SIZES {
        let data = vec![0xa5u8; size];
        let mut g = c.benchmark_group(format!("keccak256_{size}B"));
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function("tiny-keccak", |b| b.iter(|| tiny(black_box(&data))));
        g.bench_function("keccak-asm", |b| b.iter(|| asm(black_box(&data))));
        g.bench_function("sha3", |b| b.iter(|| rustcrypto(black_box(&data))));
        g.bench_function("hush_core::keccak", |b| {
            b.iter(|| hush_core::keccak::keccak256(black_box(&data)))
        });
        g.finish();
    }
    let block = [0x5au8; 16];
    let mut g = c.benchmark_group("mac_step_16B");
    let mut k = Keccak::v256();
    g.bench_function("tiny-keccak", |b| {
        b.iter(|| tiny_mac(&mut k, black_box(&block)))
    });
    let mut k = keccak_asm::Keccak256::new();
    g.bench_function("keccak-asm", |b| {
        b.iter(|| asm_mac(&mut k, black_box(&block)))
    });
    let mut k = <sha3::Keccak256 as sha3::Digest>::new();
    g.bench_function("sha3", |b| {
        b.iter(|| rustcrypto_mac(&mut k, black_box(&block)))
    });
    g.finish();
}

fn summary() {
    let budget = Duration::from_millis(300);
    println!("\nsummary (ns/op; ratio = tiny-keccak / other, > 1 means faster than tiny-keccak; loaded shared 2-core box)");
    println!(
        "{:<14} {:>12} {:>12} {:>8} {:>12} {:>8} {:>12} {:>8}",
        "input", "tiny-keccak", "keccak-asm", "ratio", "sha3", "ratio", "hush_core", "ratio"
    );
    let line = |label: &str, t: f64, a: f64, s: f64, h: f64| {
        println!(
            "{label:<14} {t:>12.1} {a:>12.1} {:>8.2} {s:>12.1} {:>8.2} {h:>12.1} {:>8.2}",
            t / a,
            t / s,
            t / h
        );
    };
    for size in SIZES {
        let data = vec![0xa5u8; size];
        assert_eq!(
            tiny(&data),
            asm(&data),
            "keccak-asm disagrees at {size} bytes"
        );
        assert_eq!(
            tiny(&data),
            rustcrypto(&data),
            "sha3 disagrees at {size} bytes"
        );
        let t = ns_per_op(budget, || {
            black_box(tiny(black_box(&data)));
        });
        let a = ns_per_op(budget, || {
            black_box(asm(black_box(&data)));
        });
        let s = ns_per_op(budget, || {
            black_box(rustcrypto(black_box(&data)));
        });
        let h = ns_per_op(budget, || {
            black_box(hush_core::keccak::keccak256(black_box(&data)));
        });
        line(&format!("{size} B"), t, a, s, h);
    }
    let block = [0x5au8; 16];
    let (mut kt, mut ka, mut ks) = (
        Keccak::v256(),
        keccak_asm::Keccak256::new(),
        <sha3::Keccak256 as sha3::Digest>::new(),
    );
    for _ in 0..3 {
        let t = tiny_mac(&mut kt, &block);
        assert_eq!(t, asm_mac(&mut ka, &block), "keccak-asm MAC step disagrees");
        assert_eq!(
            t,
            rustcrypto_mac(&mut ks, &block),
            "sha3 MAC step disagrees"
        );
    }
    let t = ns_per_op(budget, || {
        black_box(tiny_mac(&mut kt, black_box(&block)));
    });
    let a = ns_per_op(budget, || {
        black_box(asm_mac(&mut ka, black_box(&block)));
    });
    let s = ns_per_op(budget, || {
        black_box(rustcrypto_mac(&mut ks, black_box(&block)));
    });
    let mut kh = hush_core::keccak::Keccak256::new();
    let h = ns_per_op(budget, || {
        kh.update(black_box(&block));
        black_box(kh.digest());
    });
    line("MAC step 16 B", t, a, s, h);
    println!("keccak-asm backend: {}", keccak_asm::IMPL);
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    criterion_groups(&mut c);
    c.final_summary();
    summary();
}
