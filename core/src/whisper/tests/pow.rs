//! PoW from a midstate and envelopes read in place (issue 14 items 3–4).

use super::*;

/// The PoW hash as the formulas state it, with the whole input built and hashed per nonce.
fn plain_pow_digest(formula: PowFormula, rlp: &[u8], nonce: u64) -> [u8; 32] {
    let nonce_be = nonce.to_be_bytes();
    match formula {
        PowFormula::Current => crate::keccak::keccak256_concat(&[rlp, &nonce_be]),
        PowFormula::Legacy => crate::keccak::keccak256_concat(&[
            &crate::keccak::keccak256(rlp),
            &[0u8; 24],
            &nonce_be,
        ]),
    }
}

/// Zero bits of a PoW digest, counted bit by bit (leading for current, trailing for legacy).
fn plain_bits(formula: PowFormula, h: &[u8; 32]) -> u32 {
    let bit = |i: usize| h[i / 8] >> (7 - i % 8) & 1;
    match formula {
        PowFormula::Current => (0..256).take_while(|&i| bit(i) == 0).count() as u32,
        PowFormula::Legacy if h.iter().all(|&b| b == 0) => 0,
        PowFormula::Legacy => (0..256).rev().take_while(|&i| bit(i) == 0).count() as u32,
    }
}

/// Go's PoW value from the plain digest: `2^bits / len / (TTL + diff)`.
fn plain_pow(formula: PowFormula, env: &Envelope, diff: u32) -> f64 {
    let rlp = env.rlp_without_nonce();
    let h = plain_pow_digest(formula, &rlp, env.nonce);
    let bits = plain_bits(formula, &h);
    let len = match formula {
        PowFormula::Current => rlp.len(),
        PowFormula::Legacy => env.size(),
    };
    2f64.powi(bits as i32) / len as f64 / f64::from(env.ttl.wrapping_add(diff))
}

fn checks_against_plain(env: &Envelope, nonces: &[u64]) -> Result<(), TestCaseError> {
    let rlp = env.rlp_without_nonce();
    let raw = env.encode();
    let view = EnvelopeView::decode(&raw).unwrap();
    prop_assert_eq!(view.rlp_without_nonce_len(), rlp.len());
    prop_assert_eq!(view.hash(), crate::keccak::keccak256(&raw));
    prop_assert_eq!(view.to_envelope(), env.clone());
    for formula in [PowFormula::Current, PowFormula::Legacy] {
        let from_rlp = PowHasher::new(formula, &[&rlp]);
        let from_raw = view.pow_hasher(formula);
        for &nonce in nonces {
            let want = plain_pow_digest(formula, &rlp, nonce);
            prop_assert_eq!(from_rlp.digest(nonce), want);
            prop_assert_eq!(from_raw.digest(nonce), want);
        }
        for diff in [0, 3] {
            let want = plain_pow(formula, env, diff);
            prop_assert_eq!(env.pow(formula, diff), want);
            prop_assert_eq!(view.pow(formula, diff), want);
        }
    }
    Ok(())
}

#[test]
fn pow_midstate_equals_plain_hash_at_every_length_around_the_block_boundaries() {
    // Data lengths 0..=420 put RLP-without-nonce lengths on, just below and just above the
    // 136-byte rate and its multiples (and across the 55/56-byte list-header change).
    for len in 0..=420usize {
        let env = Envelope {
            expiry: 1_600_000_050,
            ttl: 50,
            topic: Topic([1, 2, 3, 4]),
            data: (0..len).map(|i| (i * 13 + 5) as u8).collect(),
            nonce: len as u64 * 0x9e37_79b9,
        };
        checks_against_plain(&env, &[0, 1, env.nonce, u64::MAX]).unwrap();
    }
}

#[test]
fn seal_finds_the_nonce_a_plain_search_finds() {
    for formula in [PowFormula::Current, PowFormula::Legacy] {
        for len in [10usize, 130, 140, 2_000] {
            let mut env = Envelope {
                expiry: 1_000,
                ttl: 50,
                topic: Topic([9, 8, 7, 6]),
                data: vec![0x42; len],
                nonce: 0,
            };
            let target = env.pow_target_bits(0.002) + 2;
            let rlp = env.rlp_without_nonce();
            let plain = (77u64..).find(|&n| {
                let h = plain_pow_digest(formula, &rlp, n);
                plain_bits(formula, &h) >= target
            });
            let tried = env.seal(formula, 0.002 * 4.0, 77, 1 << 22).unwrap();
            assert_eq!(Some(env.nonce), plain, "{formula:?} len {len}");
            assert_eq!(tried, env.nonce - 77 + 1);
        }
    }
}

/// PoW digests of eight consecutive nonces from the lane-parallel hasher, as `seal` builds it.
fn lane_digests(
    formula: PowFormula,
    rlp: &[u8],
    first: u64,
) -> [[u8; 32]; hush_keccak_lanes::LANES] {
    let legacy = crate::keccak::keccak256(rlp);
    let prefix: [&[u8]; 2] = match formula {
        PowFormula::Current => [rlp, &[]],
        PowFormula::Legacy => [&legacy, &[0u8; 24]],
    };
    let nonces: [[u8; 8]; hush_keccak_lanes::LANES] =
        core::array::from_fn(|i| first.wrapping_add(i as u64).to_be_bytes());
    crate::keccak::PrefixedKeccak256::new(&prefix).digests(&nonces)
}

proptest! {
    #[test]
    fn lane_parallel_pow_digests_equal_plain_hash(ttl in 1u32..1_000, data in proptest::collection::vec(any::<u8>(), 0..1_200),
                                                  first in any::<u64>()) {
        let env = Envelope { expiry: 1_600_000_000, ttl, topic: Topic([1, 2, 3, 4]), data, nonce: 0 };
        let rlp = env.rlp_without_nonce();
        for formula in [PowFormula::Current, PowFormula::Legacy] {
            for (i, digest) in lane_digests(formula, &rlp, first).iter().enumerate() {
                prop_assert_eq!(*digest, plain_pow_digest(formula, &rlp, first.wrapping_add(i as u64)));
            }
        }
    }

    #[test]
    fn lane_parallel_seal_equals_one_nonce_at_a_time(len in 0usize..700, start in any::<u64>(), max in 0u64..300,
                                                     target_pow in prop_oneof![Just(-1.0), 1e-6f64..0.05]) {
        // Small targets (a few bits) so both outcomes, found and budget exhausted, occur; the
        // best-effort mode (-1) keeps the first nonce with the most zero bits.
        for formula in [PowFormula::Current, PowFormula::Legacy] {
            let env = Envelope { expiry: 1_000, ttl: 30, topic: Topic([5, 6, 7, 8]), data: vec![0x5a; len], nonce: 3 };
            let (mut batched, mut single) = (env.clone(), env);
            let a = batched.seal_with(true, formula, target_pow, start, max);
            let b = single.seal_with(false, formula, target_pow, start, max);
            prop_assert_eq!(a, b);
            prop_assert_eq!(batched.nonce, single.nonce);
        }
    }

    #[test]
    fn pow_midstate_equals_plain_hash(expiry in any::<u32>(), ttl in 1u32..u32::MAX, topic in any::<[u8; 4]>(),
                                      data in proptest::collection::vec(any::<u8>(), 0..1_200),
                                      nonce in any::<u64>(), others in proptest::collection::vec(any::<u64>(), 0..4)) {
        let env = Envelope { expiry, ttl, topic: Topic(topic), data, nonce };
        let mut nonces = others;
        nonces.push(nonce);
        checks_against_plain(&env, &nonces)?;
    }

    #[test]
    fn envelope_view_is_total_and_agrees_with_the_owned_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let owned = Envelope::decode(&bytes);
        let view = EnvelopeView::decode(&bytes);
        prop_assert_eq!(owned.is_ok(), view.is_ok());
        if let (Ok(o), Ok(v)) = (owned, view) {
            prop_assert_eq!(v.to_envelope(), o);
        }
    }

    #[test]
    fn envelope_view_rejects_every_truncation(expiry in any::<u32>(), ttl in any::<u32>(), topic in any::<[u8; 4]>(),
                                              data in proptest::collection::vec(any::<u8>(), 0..300), nonce in any::<u64>()) {
        let env = Envelope { expiry, ttl, topic: Topic(topic), data, nonce };
        let enc = env.encode();
        prop_assert_eq!(EnvelopeView::decode(&enc).unwrap().to_envelope(), env);
        for cut in 0..enc.len() {
            prop_assert!(EnvelopeView::decode(&enc[..cut]).is_err());
        }
    }
}

#[test]
fn a_copy_found_by_its_bytes_whose_slot_was_reused_in_the_same_packet_is_not_a_duplicate() {
    // Pool of one: X is pooled. A packet [Y, X]: Y (expiring later) evicts X and takes its slot;
    // the X copy, found pooled by its bytes when the packet was decoded, must not be taken for
    // a duplicate of what that slot holds now (Y).
    let cfg = Config {
        min_pow: 0.0,
        max_envelopes: 1,
        ..Config::default()
    };
    let t0 = Time(T0_MS);
    let now_s = (T0_MS / 1000) as u32;
    let mut w = Whisper::new(cfg, seed_from_u64(6), t0);
    connect_full_peer(&mut w, t0, 1);
    while w.poll_action().is_some() {}
    let x = sealed(now_s, b"x", 0.0);
    let mut y = sealed(now_s + 5, b"y", 0.0);
    y.nonce = 1;
    assert!(y.expiry > x.expiry);
    w.handle_peer_message(
        t0,
        1,
        codes::MESSAGES,
        &encode_messages(std::slice::from_ref(&x)),
    );
    assert!(w.has_envelope(&x.hash()));
    w.handle_peer_message(
        t0,
        1,
        codes::MESSAGES,
        &encode_messages(&[y.clone(), x.clone()]),
    );
    assert!(w.has_envelope(&y.hash()));
    assert!(!w.has_envelope(&x.hash()));
    assert_eq!(w.pool_len(), 1);
    assert_eq!(w.stats().duplicates, 0);
    assert_eq!(w.stats().evicted_in_packet, 1);
    assert_eq!(w.stats().envelopes_received, 3);
    assert!(w
        .poll_action()
        .into_iter()
        .all(|a| !matches!(a, Action::DisconnectPeer { .. })));
}
