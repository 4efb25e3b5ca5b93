//! Whisper targets: the envelope and Messages decoders, the other packets (Status, PoW
//! requirement, bloom, rate limits), plaintext parsing behind decryption, the machine's
//! `handle_peer_message` as a full node and as a mailserver, and the mailserver codecs.

use std::sync::OnceLock;

use hush_core::rng::{rng_from_seed, seed_from_u64};
use hush_core::whisper::{
    codes, decode_bloom_filter, decode_messages, decode_messages_hashed, decode_pow_requirement,
    decode_rate_limits_packet, encode_bloom_filter, encode_messages, encode_pow_requirement,
    encode_rate_limits_packet, mailserver, Config, Encryption, Envelope, EnvelopeView,
    MailserverConfig, MessageParams, PowFormula, RequestPayload, StatusPacket, Topic, Whisper,
};

use crate::{split_messages, T0};

/// Topic of the envelopes the fuzz targets build.
pub const FUZZ_TOPIC: Topic = Topic([0xf0, 0x22, 0, 1]);
/// Symmetric key of the mailserver under [`whisper_mailserver`].
pub const MAILSERVER_KEY: [u8; 32] = [0x4d; 32];

fn client_key() -> &'static secp256k1::SecretKey {
    static KEY: OnceLock<secp256k1::SecretKey> = OnceLock::new();
    KEY.get_or_init(|| {
        hush_core::ecies::random_secret_key(&mut rng_from_seed(seed_from_u64(0x5ec)))
    })
}

/// Wraps `payload` in an envelope on [`FUZZ_TOPIC`] (no PoW), signed by a fixed key when
/// `signed`, encrypted as given; `None` if the payload is too large to wrap.
pub fn wrap_payload(payload: &[u8], signed: bool, encryption: &Encryption) -> Option<Envelope> {
    let params = MessageParams {
        payload: payload.to_vec(),
        padding: None,
        sign_with: signed.then_some(*client_key()),
        topic: FUZZ_TOPIC,
        ttl_secs: 30,
        pow_target: 0.0,
    };
    let mut rng = rng_from_seed(seed_from_u64(payload.len() as u64));
    hush_core::whisper::wrap(
        &params,
        encryption,
        T0.as_secs() as u32,
        PowFormula::Current,
        0,
        1,
        &mut rng,
    )
    .ok()
}

/// `Envelope::decode` against the in-place `EnvelopeView`: same verdict, same fields, same
/// hash and PoW under both formulas.
pub fn envelope(data: &[u8]) {
    let owned = Envelope::decode(data);
    let view = EnvelopeView::decode(data);
    assert_eq!(
        owned.is_ok(),
        view.is_ok(),
        "view and owned decoder disagree"
    );
    if let (Ok(o), Ok(v)) = (&owned, &view) {
        assert_eq!(&v.to_envelope(), o);
        assert_eq!(v.hash(), hush_core::keccak::keccak256(&o.encode()));
        assert_eq!(v.hash(), o.hash());
        for formula in [PowFormula::Current, PowFormula::Legacy] {
            let (a, b) = (v.pow(formula, 0), o.pow(formula, 0));
            assert!(a == b || (a.is_nan() && b.is_nan()), "PoW differs");
        }
        let _ = (o.size(), o.sent_secs(), o.bloom(), o.rlp_without_nonce());
    }
}

/// `decode_messages`, `decode_messages_hashed` and the P2P form: the hashed decoder agrees
/// with the plain one, each hash is the envelope's, and what decodes re-encodes to a packet
/// that decodes to the same envelopes.
pub fn messages(data: &[u8]) {
    let plain = decode_messages(data);
    let hashed = decode_messages_hashed(data);
    assert_eq!(plain.is_ok(), hashed.is_ok(), "hashed decoder disagrees");
    if let (Ok(p), Ok(h)) = (&plain, &hashed) {
        assert_eq!(p.len(), h.len());
        for (e, (he, hash)) in p.iter().zip(h) {
            assert_eq!(e, he);
            assert_eq!(*hash, e.hash());
        }
        assert_eq!(decode_messages(&encode_messages(p)).as_ref(), Ok(p));
    }
    let _ = mailserver::decode_p2p_messages(data);
}

/// The other packets' decoders: Status, PoW requirement, bloom filter, rate limits. A decoded
/// value re-encodes to bytes that decode to the same value.
pub fn packets(data: &[u8]) {
    if let Ok(s) = StatusPacket::decode(data) {
        assert_eq!(StatusPacket::decode(&s.encode()).as_ref(), Ok(&s));
    }
    if let Ok(p) = decode_pow_requirement(data) {
        assert_eq!(decode_pow_requirement(&encode_pow_requirement(p)), Ok(p));
    }
    if let Ok(b) = decode_bloom_filter(data) {
        assert_eq!(decode_bloom_filter(&encode_bloom_filter(&b)), Ok(b));
    }
    if let Ok(r) = decode_rate_limits_packet(data) {
        assert_eq!(
            decode_rate_limits_packet(&encode_rate_limits_packet(&r)),
            Ok(r)
        );
    }
}

/// Plaintext parsing behind both decryptions. Raw bytes go to `parse_plaintext` and both
/// decrypters; with a first byte `0` or `1`, the rest is wrapped (signed when `1`)
/// symmetrically and opened again: the payload and signer must come back, and a flipped byte
/// of the ciphertext must not open.
pub fn plaintext(data: &[u8]) {
    use hush_core::whisper::{
        decrypt_asymmetric, decrypt_symmetric, open_symmetric, parse_plaintext,
    };
    let _ = parse_plaintext(data);
    let _ = decrypt_symmetric(data, &MAILSERVER_KEY);
    let _ = decrypt_asymmetric(data, client_key());
    let [mode @ (0 | 1), flip, payload @ ..] = data else {
        return;
    };
    let signed = *mode == 1;
    let Some(env) = wrap_payload(payload, signed, &Encryption::Symmetric(MAILSERVER_KEY)) else {
        return;
    };
    let got = open_symmetric(&env, env.hash(), &MAILSERVER_KEY, PowFormula::Current)
        .expect("a wrapped message opens");
    assert_eq!(got.payload, payload);
    let signer = signed.then(|| hush_core::ecies::public_key(client_key()));
    assert_eq!(got.signer, signer);
    let mut bad = env.clone();
    let i = usize::from(*flip) * bad.data.len() / 256;
    bad.data[i] ^= 0x80;
    assert!(
        open_symmetric(&bad, bad.hash(), &MAILSERVER_KEY, PowFormula::Current).is_err(),
        "a tampered symmetric message opened"
    );
}

fn status_packet() -> StatusPacket {
    StatusPacket {
        version: 6,
        min_pow: 0.0,
        bloom: None,
        light_node: false,
        confirmations_enabled: false,
        rate_limits: None,
    }
}

/// Runs `(code, payload)` messages from two peers into `w`: each message from peer 1, then
/// the same from peer 2 (so pooled envelopes come back as duplicates), after a valid Status
/// when `status`; then timers.
fn drive(w: &mut Whisper, status: bool, messages: &[(u64, Vec<u8>)]) {
    for peer in [1, 2] {
        w.handle_peer_connected(T0, peer);
        if status {
            w.handle_peer_message(T0, peer, codes::STATUS, &status_packet().encode());
        }
    }
    for (code, payload) in messages {
        for peer in [1, 2] {
            w.handle_peer_message(T0, peer, *code, payload);
            while w.poll_action().is_some() {}
        }
    }
    w.handle_timeout(T0.plus_millis(1_000));
    w.handle_peer_disconnected(T0.plus_millis(1_000), 2);
    w.handle_timeout(T0.plus_millis(60_000));
    while w.poll_action().is_some() {}
}

/// `Whisper::handle_peer_message` on a full node (min PoW 0, a symmetric filter on
/// [`FUZZ_TOPIC`]): input `flags, (code, len, payload)*`; bit 0 of flags: a valid Status first;
/// bit 1: each payload is wrapped as an envelope for the filter and sent as a Messages packet.
pub fn whisper(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut w = Whisper::new(
        Config {
            min_pow: 0.0,
            ..Config::default()
        },
        seed_from_u64(9),
        T0,
    );
    let _ = w.add_filter(hush_core::whisper::Filter {
        key: hush_core::whisper::FilterKey::Symmetric(MAILSERVER_KEY),
        topics: vec![FUZZ_TOPIC],
        allow_p2p: true,
        min_pow: 0.0,
    });
    let messages: Vec<(u64, Vec<u8>)> = split_messages(rest)
        .into_iter()
        .map(|(code, payload)| {
            if flags & 2 != 0 {
                let env = wrap_payload(
                    payload,
                    code % 2 == 0,
                    &Encryption::Symmetric(MAILSERVER_KEY),
                );
                (
                    codes::MESSAGES,
                    encode_messages(&env.into_iter().collect::<Vec<_>>()),
                )
            } else {
                (u64::from(code), payload.to_vec())
            }
        })
        .collect();
    drive(&mut w, flags & 1 != 0, &messages);
}

/// `Whisper::handle_peer_message` on a mailserver (symmetric request key, three archived
/// envelopes): input `flags, (code, len, payload)*`; bit 0: a valid Status first; bit 1: each
/// payload is wrapped as a signed request envelope for the mailserver's key and sent as a
/// code-126 request, so the request decoder and the archive query see fuzz bytes.
pub fn whisper_mailserver(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut w = Whisper::new(
        Config {
            min_pow: 0.0,
            mailserver: Some(MailserverConfig {
                sym_key: Some(MAILSERVER_KEY),
                max_archive_envelopes: 64,
                max_archive_bytes: 64 * 1024,
                ..MailserverConfig::default()
            }),
            ..Config::default()
        },
        seed_from_u64(10),
        T0,
    );
    w.set_identity(*client_key());
    for text in [&b"one"[..], b"two", b"three"] {
        if let Some(env) = wrap_payload(text, true, &Encryption::Symmetric([1; 32])) {
            let _ = w.restore_archived(&env.encode());
        }
    }
    let messages: Vec<(u64, Vec<u8>)> = split_messages(rest)
        .into_iter()
        .map(|(code, payload)| {
            if flags & 2 != 0 {
                let env = wrap_payload(
                    payload,
                    code % 2 == 0,
                    &Encryption::Symmetric(MAILSERVER_KEY),
                );
                (
                    codes::P2P_REQUEST,
                    env.map(|e| e.encode()).unwrap_or_default(),
                )
            } else {
                (u64::from(code), payload.to_vec())
            }
        })
        .collect();
    drive(&mut w, flags & 1 != 0, &messages);
}

/// The mailserver codecs: request payload (and its `MessagesRequest` list form with
/// `validate`), completion, message response, batch ack and P2P messages. A decoded value
/// re-encodes to bytes that decode to the same value.
pub fn mailserver_codecs(data: &[u8]) {
    use hush_core::whisper::{MessageResponse, MessagesRequest, RequestCompletion};
    if let Ok(r) = RequestPayload::decode(data) {
        assert_eq!(RequestPayload::decode(&r.encode()).as_ref(), Ok(&r));
    }
    if let Ok(r) = MessagesRequest::decode(data) {
        let _ = r.validate();
        assert_eq!(MessagesRequest::decode(&r.encode()).as_ref(), Ok(&r));
    }
    if let Ok(c) = RequestCompletion::decode(data) {
        assert_eq!(RequestCompletion::decode(&c.encode()).as_ref(), Ok(&c));
    }
    if let Ok(m) = MessageResponse::decode(data) {
        assert_eq!(MessageResponse::decode(&m.encode()).as_ref(), Ok(&m));
    }
    if let Ok(h) = mailserver::decode_batch_ack(data) {
        assert_eq!(
            mailserver::decode_batch_ack(&mailserver::encode_batch_ack(&h)),
            Ok(h)
        );
    }
    let _ = mailserver::decode_p2p_messages(data);
}
