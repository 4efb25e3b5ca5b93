//! devp2p targets: the RLPx handshake and frame codecs, a responder [`Session`] after a real
//! handshake (Hello, snappy, dispatch), a whole [`Node`] fed bytes on an established
//! connection, RLP, ECIES and enode URLs.

use std::sync::{Arc, OnceLock};

use hush_core::ecies::{pubkey_to_wire, public_key, random_secret_key};
use hush_core::node::{self, Command, Direction, Node, NodeConfig};
use hush_core::p2p::rlpx::handshake::{decode_ack, decode_auth, PacketFormat};
use hush_core::p2p::rlpx::{FrameCodec, Initiator, Responder, Secrets};
use hush_core::p2p::session::{
    self, decode_disconnect, decode_hello, encode_hello, Capability, Config, Hello, Role, Session,
};
use hush_core::rlp::{Encoder, Rlp};
use hush_core::rng::{rng_from_seed, seed_from_u64};
use hush_core::whisper::{self as shh, StatusPacket};

use crate::{split_messages, T0};

/// Frame limit of the codecs under test: small enough to keep iterations fast.
const FUZZ_MAX_FRAME_BYTES: usize = 64 * 1024;

/// Fixed keys: `local` plays the remote client, `remote` the machine under test.
pub struct Keys {
    /// The fuzzing client's static key (the RLPx initiator).
    pub local: secp256k1::SecretKey,
    /// The key of the session or node under test (the RLPx responder).
    pub remote: secp256k1::SecretKey,
    /// (initiator side, responder side) secrets of one completed handshake.
    pub pair: (Secrets, Secrets),
}

/// The fixed keys, derived once from a fixed seed.
pub fn keys() -> &'static Keys {
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

/// The RLPx frame codec alone (no session: see [`session`]). The first byte picks a mode:
/// - `0`: raw bytes into `FrameCodec::open`, in chunks;
/// - `1`: the rest describes messages `(code, len, payload)` sealed by the peer, then one byte
///   of the wire flipped at a chosen position (or none); unflipped frames must open intact;
/// - other: the base protocol's payload decoders (Hello, Disconnect).
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
    let (flip, rest) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), rest),
        _ => return,
    };
    let mut sent = Vec::new();
    let mut wire = Vec::new();
    for (code, payload) in split_messages(rest) {
        let code = u64::from(code) << (code % 5 * 8);
        if sender.seal(code, payload, &mut wire).is_ok() {
            sent.push((code, payload.to_vec()));
        }
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

/// Flags of the first byte of [`session`] and [`node`] inputs.
pub mod flags {
    /// Send a valid Hello (v5, `shh/6`) before the fuzz messages.
    pub const HELLO: u8 = 1;
    /// Snappy-compress every fuzz message (as a v5 peer must after the Hellos).
    pub const SNAPPY: u8 = 2;
    /// [`super::node`]: send a valid Whisper Status after the Hello.
    pub const STATUS: u8 = 4;
    /// [`super::node`]: wrap each fuzz payload as a signed envelope of the joined public chat
    /// and send it in a Whisper Messages packet (code 0x11) instead of as a raw message.
    pub const CHAT_ENVELOPE: u8 = 8;
}

/// The client half of an RLPx connection: a real initiator handshake with fixed keys and
/// seed against a peer under test, then frames sealed with the established secrets.
struct Client {
    codec: FrameCodec,
}

impl Client {
    /// Runs the handshake; `peer` takes bytes and returns what the peer transmitted in answer.
    /// `None` if the peer did not answer with a valid ack (never, for hush).
    fn connect(peer: &mut dyn FnMut(&[u8]) -> Vec<u8>) -> Option<Client> {
        let k = keys();
        let mut rng = rng_from_seed(seed_from_u64(2));
        let init = Initiator::new(&mut rng, k.local, public_key(&k.remote));
        let answer = peer(init.auth_packet());
        let (ack, _, used) = init.read_ack(&answer).ok()??;
        let secrets = init.finish(&ack, &answer[..used]);
        let mut codec = FrameCodec::new(secrets, session::MAX_MESSAGE_SIZE_BYTES);
        // The peer's Hello follows its ack: open it so the ingress MAC state moves on.
        let mut rest = answer[used..].to_vec();
        while let Ok(Some(_)) = codec.open(&mut rest) {}
        Some(Client { codec })
    }

    /// Seals one message, compressed when `snappy`.
    fn seal(&mut self, code: u64, payload: &[u8], snappy: bool, wire: &mut Vec<u8>) {
        let body = if snappy {
            snap::raw::Encoder::new()
                .compress_vec(payload)
                .expect("snappy compresses any input below 4 GiB")
        } else {
            payload.to_vec()
        };
        self.codec
            .seal(code, &body, wire)
            .expect("messages below 64 KiB fit a frame");
    }
}

fn client_hello() -> Vec<u8> {
    encode_hello(&Hello {
        version: session::BASE_PROTOCOL_VERSION,
        client_id: "fuzz".into(),
        capabilities: vec![(shh::CAPABILITY_NAME.into(), shh::CAPABILITY_VERSION)],
        listen_port: 0,
        node_id: pubkey_to_wire(&public_key(&keys().local)).to_vec(),
        extra_elements: 0,
    })
}

/// An established responder session's message handling: a fixed client completes a real
/// handshake (so the fuzz bytes are past the MACs), then the input, read as
/// `flags, (code, len, payload)*`, is sealed and fed in chunks: the Hello (the fuzzer's, or a
/// valid one with [`flags::HELLO`]), snappy-compressed messages ([`flags::SNAPPY`]), base
/// protocol and `shh` messages dispatched by code; then the session's timers run.
pub fn session(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let k = keys();
    let config = Arc::new(Config {
        capabilities: vec![Capability::new(
            shh::CAPABILITY_NAME,
            shh::CAPABILITY_VERSION as u32,
            shh::NUMBER_OF_MESSAGE_CODES,
        )],
        ..Config::default()
    });
    let mut s = Session::new(config, k.remote, Role::Responder, [7; 32], T0);
    let feed = |s: &mut Session, bytes: &[u8]| {
        s.handle_input(T0, bytes);
        let mut out = Vec::new();
        while let Some(a) = s.poll_action() {
            if let session::Action::Transmit(b) = a {
                out.extend_from_slice(&b);
            }
        }
        out
    };
    let Some(mut client) = Client::connect(&mut |b| feed(&mut s, b)) else {
        panic!("a valid auth was not answered with a valid ack");
    };
    let mut wire = Vec::new();
    let snappy = flags & flags::SNAPPY != 0;
    if flags & flags::HELLO != 0 {
        client.seal(0, &client_hello(), false, &mut wire);
    }
    for (code, payload) in split_messages(rest) {
        client.seal(u64::from(code), payload, snappy, &mut wire);
    }
    let chunk = usize::from(flags >> 4) * 16 + 1;
    for piece in wire.chunks(chunk) {
        feed(&mut s, piece);
    }
    if s.is_established() {
        let _ = s.send(T0, shh::CAPABILITY_NAME, 1, b"\xc0");
    }
    s.handle_timeout(T0.plus_millis(session::DEFAULT_PING_INTERVAL_MS));
    s.handle_timeout(T0.plus_millis(60_000));
    while s.poll_action().is_some() {}
}

/// Chat joined by the node under [`node`].
pub const NODE_CHAT: &str = "fuzz";

/// A whole node (every layer wired): an inbound connection from a fixed client that completes
/// a real handshake, then the input read as `flags, (code, len, payload)*` sealed into frames
/// fed to `Node::handle_bytes`: a valid Hello ([`flags::HELLO`]) and Whisper Status
/// ([`flags::STATUS`]) first if asked, each message snappy-compressed with [`flags::SNAPPY`],
/// or wrapped as a signed envelope of the joined chat ([`flags::CHAT_ENVELOPE`]) so it reaches
/// the chat layer; then the node's timers run.
pub fn node(data: &[u8]) {
    node_events(data);
}

/// [`node`], returning the events the node reported (for the tests that check how deep the
/// seeds reach).
pub fn node_events(data: &[u8]) -> Vec<node::Event> {
    let mut events = Vec::new();
    let Some((&flags, rest)) = data.split_first() else {
        return events;
    };
    let k = keys();
    let mut config = NodeConfig::default();
    // No PoW anywhere and no contact-code posts: sealing, not decoding, would take the time.
    config.whisper.min_pow = 0.0;
    config.chat.pow_target = 0.0;
    config.conversations.publish_contact_code = false;
    let mut n = Node::new(config, k.remote.secret_bytes(), seed_from_u64(3), T0).expect("node");
    n.handle_command(
        T0,
        Command::JoinPublicChat {
            name: NODE_CHAT.into(),
        },
    )
    .expect("join");
    const CONN: node::ConnId = 1;
    n.handle_connection(T0, CONN, Direction::Inbound)
        .expect("inbound connection");
    let mut feed = |n: &mut Node, bytes: &[u8]| {
        n.handle_bytes(T0, CONN, bytes);
        let mut out = Vec::new();
        while let Some(a) = n.poll_action() {
            match a {
                node::Action::Send { bytes, .. } => out.extend_from_slice(&bytes),
                node::Action::Event(e) => events.push(e),
                _ => {}
            }
        }
        out
    };
    let Some(mut client) = Client::connect(&mut |b| feed(&mut n, b)) else {
        panic!("a valid auth was not answered with a valid ack");
    };
    let snappy = flags & flags::SNAPPY != 0;
    let mut wire = Vec::new();
    if flags & flags::HELLO != 0 {
        client.seal(0, &client_hello(), false, &mut wire);
    }
    let shh_offset = session::BASE_PROTOCOL_LENGTH;
    if flags & flags::STATUS != 0 {
        let status = StatusPacket {
            version: 6,
            min_pow: 0.0,
            bloom: None,
            light_node: false,
            confirmations_enabled: false,
            rate_limits: None,
        };
        client.seal(shh_offset, &status.encode(), snappy, &mut wire);
    }
    for (code, payload) in split_messages(rest) {
        if flags & flags::CHAT_ENVELOPE != 0 {
            let packet = shh::encode_messages(&[chat_envelope(payload, code)]);
            client.seal(
                shh_offset + shh::codes::MESSAGES,
                &packet,
                snappy,
                &mut wire,
            );
        } else {
            client.seal(u64::from(code), payload, snappy, &mut wire);
        }
    }
    let chunk = usize::from(flags >> 4) * 16 + 1;
    for piece in wire.chunks(chunk) {
        feed(&mut n, piece);
    }
    for later_ms in [1_000, 60_000] {
        n.handle_timeout(T0.plus_millis(later_ms));
        while let Some(a) = n.poll_action() {
            if let node::Action::Event(e) = a {
                events.push(e);
            }
        }
    }
    events
}

/// A Whisper envelope of [`NODE_CHAT`] carrying `payload`, signed by the client's key, or
/// unsigned when `variant` is odd.
fn chat_envelope(payload: &[u8], variant: u8) -> shh::Envelope {
    let params = shh::MessageParams {
        payload: payload.to_vec(),
        padding: None,
        sign_with: variant.is_multiple_of(2).then_some(keys().local),
        topic: hush_core::chat::public_chat_topic(NODE_CHAT),
        ttl_secs: 30,
        pow_target: 0.0,
    };
    let mut rng = rng_from_seed(seed_from_u64(u64::from(variant)));
    shh::wrap(
        &params,
        &shh::Encryption::Symmetric(hush_core::chat::public_chat_key(NODE_CHAT)),
        T0.as_secs() as u32,
        shh::PowFormula::Current,
        0,
        1,
        &mut rng,
    )
    .expect("wrap with no PoW target")
}

/// `rlp::Rlp`: the item and every nested item through each accessor, to the depth limit.
/// Oracle: an item the strict decoder accepts re-encodes to exactly its bytes.
pub fn rlp(data: &[u8]) {
    let _ = Rlp::new_prefix(data);
    let Ok(item) = Rlp::new(data) else {
        return;
    };
    let valid = item.validate().is_ok();
    walk(&item, 0);
    if valid {
        let mut e = Encoder::new();
        reencode(&item, &mut e);
        assert_eq!(e.finish(), data, "a canonical item re-encodes to itself");
    }
}

fn walk(item: &Rlp<'_>, depth: usize) {
    let _ = (item.raw(), item.payload(), item.is_list());
    let _ = item.bytes();
    let _ = item.fixed::<32>();
    let _ = item.u64();
    let _ = item.u32();
    let _ = item.u8();
    let _ = item.uint_bytes(32);
    let _ = item.bool();
    if depth >= hush_core::rlp::MAX_DEPTH {
        return;
    }
    if let Ok(list) = item.list() {
        let _ = list.clone().count();
        let _ = list.clone().finish();
        let mut list = list;
        while let Ok(Some(child)) = list.next_item() {
            walk(&child, depth + 1);
        }
    }
}

fn reencode(item: &Rlp<'_>, e: &mut Encoder) {
    match item.list() {
        Ok(mut list) => {
            e.list(|e| {
                while let Ok(Some(child)) = list.next_item() {
                    reencode(&child, e);
                }
            });
        }
        Err(_) => {
            e.bytes(item.bytes().expect("a validated string item"));
        }
    }
}

/// ECIES: the public key parser and `decrypt` (under two shared MAC data values) of raw
/// bytes; with a first byte of `0`, the rest is encrypted to our key (ephemeral key and IV
/// from the next bytes) and one byte flipped: only the unflipped message may decrypt, to the
/// plaintext.
pub fn ecies(data: &[u8]) {
    use hush_core::ecies::{decrypt, encrypt_with, pubkey_from_wire};
    let k = keys();
    let _ = pubkey_from_wire(data);
    let _ = decrypt(&k.remote, data, &[]);
    let _ = decrypt(&k.remote, data, b"mac");
    let [0, key_byte, iv_byte, flip_hi, flip_lo, plain @ ..] = data else {
        return;
    };
    let ephemeral = secp256k1::SecretKey::from_byte_array(&[(*key_byte).clamp(1, 0x7f); 32])
        .expect("a repeated byte in 1..=0x7f is a valid key (below the curve order)");
    let message = encrypt_with(
        &ephemeral,
        [*iv_byte; 16],
        &public_key(&k.remote),
        plain,
        b"mac",
    );
    assert_eq!(decrypt(&k.remote, &message, b"mac").as_deref(), Ok(plain));
    let flip = usize::from(u16::from_be_bytes([*flip_hi, *flip_lo]));
    if flip < message.len() {
        let mut bad = message.clone();
        bad[flip] ^= 0x01;
        assert!(
            decrypt(&k.remote, &bad, b"mac").is_err(),
            "a tampered ECIES message decrypted"
        );
    }
}

/// Enode URL parser; an accepted URL formats to a URL that parses to the same enode.
pub fn enode(data: &[u8]) {
    use hush_core::p2p::enode::Enode;
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(e) = s.parse::<Enode>() {
        let again: Enode = e.to_string().parse().expect("formatted enode parses");
        assert_eq!(again, e);
    }
}
