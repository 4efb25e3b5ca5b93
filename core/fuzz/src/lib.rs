//! Entry points of the P2P and Whisper fuzz targets, shared by the libFuzzer binaries (nightly) and the
//! stable smoke test / file runner. Each entry point must never panic on any input; the
//! structured modes also check an oracle (valid frames open to what was sealed).

use std::sync::{Arc, OnceLock};

pub mod chat;

use hush_core::ecies::{public_key, random_secret_key};
use hush_core::p2p::rlpx::handshake::{decode_ack, decode_auth, PacketFormat};
use hush_core::p2p::rlpx::{FrameCodec, Initiator, Responder, Secrets};
use hush_core::p2p::session::{decode_disconnect, decode_hello, Config, Role, Session};
use hush_core::rng::{rng_from_seed, seed_from_u64};
use hush_core::Time;

const T0: Time = Time(1_570_000_000_000);
/// Frame limit of the codecs under test: small enough to keep iterations fast.
const FUZZ_MAX_FRAME_BYTES: usize = 64 * 1024;

struct Keys {
    local: secp256k1::SecretKey,
    remote: secp256k1::SecretKey,
    /// (initiator side, responder side) secrets of one completed handshake.
    pair: (Secrets, Secrets),
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut rng = rng_from_seed(seed_from_u64(0xf022));
        let local = random_secret_key(&mut rng);
        let remote = random_secret_key(&mut rng);
        let init = Initiator::new(&mut rng, local, public_key(&remote));
        let resp = Responder::new(&mut rng, remote);
        let auth_packet = init.auth_packet().to_vec();
        let (auth, format, _) = resp.read_auth(&auth_packet).unwrap().unwrap();
        let ack_packet = resp.ack_packet(&mut rng, &auth, format);
        let (ack, _, _) = init.read_ack(&ack_packet).unwrap().unwrap();
        let a = init.finish(&ack, &ack_packet);
        let b = resp.finish(&auth, &auth_packet, &ack_packet).unwrap();
        Keys {
            local,
            remote,
            pair: (a, b),
        }
    })
}

/// Auth/ack decoders: the packet readers of both roles, the body decoders in both formats,
/// and a responder session fed the input in chunks.
pub fn handshake(data: &[u8]) {
    let k = keys();
    let mut rng = rng_from_seed(seed_from_u64(1));
    let resp = Responder::new(&mut rng, k.remote);
    let _ = resp.read_auth(data);
    let init = Initiator::new(&mut rng, k.local, public_key(&k.remote));
    let _ = init.read_ack(data);
    for format in [PacketFormat::Legacy, PacketFormat::Eip8] {
        let _ = decode_auth(data, format);
        let _ = decode_ack(data, format);
    }
    let mut session = Session::new(
        Arc::new(Config::default()),
        k.remote,
        Role::Responder,
        [7; 32],
        T0,
    );
    let chunk = usize::from(data.first().copied().unwrap_or(1)).max(1);
    for piece in data.chunks(chunk) {
        session.handle_input(T0, piece);
        while session.poll_action().is_some() {}
    }
}

/// Frame decoder. The first byte picks a mode:
/// - `0`: raw bytes into `FrameCodec::open`, in chunks;
/// - `1`: the rest describes messages `(code, len, payload)` sealed by the peer, then one byte
///   of the wire flipped at a chosen position (or none); unflipped frames must open intact;
/// - other: the message payload decoders (Hello, Disconnect).
pub fn frame(data: &[u8]) {
    let k = keys();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode {
        0 => {
            let mut codec = FrameCodec::new(k.pair.1.clone(), FUZZ_MAX_FRAME_BYTES);
            let mut buf = Vec::new();
            for piece in rest.chunks(17) {
                buf.extend_from_slice(piece);
                loop {
                    match codec.open(&mut buf) {
                        Ok(Some(_)) => continue,
                        Ok(None) => break,
                        Err(_) => return,
                    }
                }
            }
        }
        1 => sealed_frames(rest),
        _ => {
            let _ = decode_hello(rest);
            let _ = decode_disconnect(rest);
        }
    }
}

fn sealed_frames(data: &[u8]) {
    let k = keys();
    // Same limit both ways: an oversize message is refused by `seal` and never sent.
    let mut sender = FrameCodec::new(k.pair.0.clone(), FUZZ_MAX_FRAME_BYTES);
    let mut receiver = FrameCodec::new(k.pair.1.clone(), FUZZ_MAX_FRAME_BYTES);
    let (flip, mut rest) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), rest),
        _ => return,
    };
    let mut sent = Vec::new();
    let mut wire = Vec::new();
    while let [code, l1, l2, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*l1, *l2])).min(tail.len());
        let (payload, next) = tail.split_at(len);
        let code = u64::from(*code) << (code % 5 * 8);
        if sender.seal(code, payload, &mut wire).is_ok() {
            sent.push((code, payload.to_vec()));
        }
        rest = next;
    }
    // flip == 0xffff: no mutation.
    let mutated = flip != 0xffff && flip < wire.len();
    if mutated {
        wire[flip] ^= 0x5a;
    }
    let mut opened = Vec::new();
    let mut buf = Vec::new();
    let mut failed = false;
    for piece in wire.chunks(31) {
        buf.extend_from_slice(piece);
        while !failed {
            match receiver.open(&mut buf) {
                Ok(Some(m)) => opened.push(m),
                Ok(None) => break,
                Err(_) => failed = true,
            }
        }
    }
    if !mutated {
        assert!(!failed, "a valid frame was refused");
        assert_eq!(opened, sent, "valid frames must open to what was sealed");
    } else {
        // A flipped byte must never yield a frame different from what was sealed.
        for (i, m) in opened.iter().enumerate() {
            if sent.get(i) != Some(m) {
                panic!("tampered frame accepted: {i}");
            }
        }
    }
}

/// Whisper envelope decoders: the in-place view against the owned decoder (same verdict,
/// same fields, same hash and PoW), and the input as a Messages packet, twice (the second time
/// every pooled envelope is a duplicate found by its bytes), into a machine with one peer.
pub fn whisper(data: &[u8]) {
    use hush_core::whisper::{
        codes, Config, Envelope, EnvelopeView, PowFormula, StatusPacket, Whisper,
    };
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
        for formula in [PowFormula::Current, PowFormula::Legacy] {
            let (a, b) = (v.pow(formula, 0), o.pow(formula, 0));
            assert!(a == b || (a.is_nan() && b.is_nan()), "PoW differs");
        }
    }
    let mut w = Whisper::new(
        Config {
            min_pow: 0.0,
            ..Config::default()
        },
        seed_from_u64(9),
        T0,
    );
    let status = StatusPacket {
        version: 6,
        min_pow: 0.0,
        bloom: None,
        light_node: false,
        confirmations_enabled: false,
        rate_limits: None,
    };
    w.handle_peer_connected(T0, 1);
    w.handle_peer_message(T0, 1, codes::STATUS, &status.encode());
    w.handle_peer_message(T0, 1, codes::MESSAGES, data);
    w.handle_peer_connected(T0, 2);
    w.handle_peer_message(T0, 2, codes::STATUS, &status.encode());
    w.handle_peer_message(T0, 2, codes::MESSAGES, data);
    w.handle_timeout(T0.plus_millis(1_000));
    while w.poll_action().is_some() {}
}

/// Stable runner: each path argument (or stdin when none) is one input.
pub fn run_inputs(target: fn(&[u8])) {
    use std::io::Read;
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        let mut data = Vec::new();
        std::io::stdin().read_to_end(&mut data).expect("read stdin");
        target(&data);
        return;
    }
    for path in paths {
        let data = std::fs::read(&path).expect("read input file");
        target(&data);
        println!("ok {path}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, RngCore, SeedableRng};

    #[test]
    fn entry_points_survive_random_and_structured_inputs() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        for i in 0..2_000 {
            let len = rng.gen_range(0..800);
            let mut data = vec![0u8; len];
            rng.fill_bytes(&mut data);
            handshake(&data);
            frame(&data);
            if let Some(first) = data.first_mut() {
                *first = (i % 3) as u8;
            }
            frame(&data);
            // Structured: well-formed message list, with and without a flip.
            let mut s = vec![1u8];
            s.extend_from_slice(&if i % 2 == 0 {
                [0xff, 0xff]
            } else {
                [0, (i % 200) as u8]
            });
            for _ in 0..rng.gen_range(0..4) {
                let n: u16 = rng.gen_range(0..300);
                s.push(rng.gen());
                s.extend_from_slice(&n.to_be_bytes());
                s.extend((0..n).map(|_| rng.gen::<u8>()));
            }
            frame(&s);
        }
    }

    #[test]
    fn whisper_entry_point_survives_random_and_valid_packets() {
        use hush_core::whisper::{encode_messages, Envelope, Topic};
        let mut rng = rand::rngs::StdRng::seed_from_u64(43);
        for _ in 0..2_000 {
            let len = rng.gen_range(0..600);
            let mut data = vec![0u8; len];
            rng.fill_bytes(&mut data);
            whisper(&data);
            // A valid packet of current envelopes, then each of its truncations' prefixes.
            let envs: Vec<Envelope> = (0..rng.gen_range(0..4))
                .map(|_| Envelope {
                    expiry: (T0.as_secs() + 30) as u32,
                    ttl: 30,
                    topic: Topic(rng.gen()),
                    data: (0..rng.gen_range(0..300)).map(|_| rng.gen()).collect(),
                    nonce: rng.gen(),
                })
                .collect();
            let packet = encode_messages(&envs);
            whisper(&packet);
            let cut = rng.gen_range(0..=packet.len());
            whisper(&packet[..cut]);
            if let Some(e) = envs.first() {
                whisper(&e.encode());
            }
        }
    }

    #[test]
    fn chat_entry_points_survive_random_inputs() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(43);
        for _ in 0..300 {
            let len = rng.gen_range(0..300);
            let mut data = vec![0u8; len];
            rng.fill_bytes(&mut data);
            chat::chat_app(&data);
            chat::group_fold(&data);
            if let Some(first) = data.first_mut() {
                *first = b'[';
            }
            chat::chat_app(&data);
        }
    }

    #[test]
    fn valid_handshake_packets_are_seeds() {
        let k = keys();
        let mut rng = rng_from_seed(seed_from_u64(3));
        for format in [PacketFormat::Eip8, PacketFormat::Legacy] {
            let init = Initiator::new_with_format(&mut rng, k.local, public_key(&k.remote), format);
            handshake(init.auth_packet());
        }
    }
}
