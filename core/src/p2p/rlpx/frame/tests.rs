use super::*;
use crate::keccak::keccak256;
use proptest::prelude::*;

const FAKE_VECTOR: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../testdata/vectors/rlpx_frame_fake_mac.json"
));

/// Two codecs facing each other: A's egress is B's ingress and vice versa.
fn pair(max: usize) -> (FrameCodec, FrameCodec) {
    let aes = keccak256(b"aes");
    let mac = keccak256(b"mac");
    let mut k1 = Keccak256::new();
    k1.update(b"one");
    let mut k2 = Keccak256::new();
    k2.update(b"two");
    let a = FrameCodec::with_hashes(
        &aes,
        &mac,
        MacHash::Keccak(k1.clone()),
        MacHash::Keccak(k2.clone()),
        max,
    );
    let b = FrameCodec::with_hashes(&aes, &mac, MacHash::Keccak(k2), MacHash::Keccak(k1), max);
    (a, b)
}

#[test]
fn geth_fake_mac_vector() {
    let v: serde_json::Value = serde_json::from_str(FAKE_VECTOR).unwrap();
    let secret: [u8; 32] = hex::decode(v["aes_secret"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    assert_eq!(secret, keccak256(b""));
    let code = v["message_code"].as_u64().unwrap();
    let payload = hex::decode(v["payload_rlp"].as_str().unwrap()).unwrap();
    let expected = v["expected_wire_bytes"].as_str().unwrap();

    let mut codec = FrameCodec::new_fake_mac(&secret, &secret);
    let mut out = Vec::new();
    codec.seal(code, &payload, &mut out).unwrap();
    assert_eq!(hex::encode(&out), expected);

    let mut reader = FrameCodec::new_fake_mac(&secret, &secret);
    let mut buf = hex::decode(expected).unwrap();
    assert_eq!(reader.open(&mut buf).unwrap(), Some((code, payload)));
    assert!(buf.is_empty());
}

#[test]
fn roundtrip_many_frames_incrementally() {
    let (mut a, mut b) = pair(MAX_FRAME_SIZE_BYTES);
    let mut wire = Vec::new();
    let msgs: Vec<(u64, Vec<u8>)> = (0..20u64)
        .map(|i| (i * 17, vec![i as u8; (i * 13) as usize]))
        .collect();
    for (code, payload) in &msgs {
        a.seal(*code, payload, &mut wire).unwrap();
    }
    // Feed one byte at a time.
    let mut buf = Vec::new();
    let mut got = Vec::new();
    for byte in wire {
        buf.push(byte);
        while let Some(m) = b.open(&mut buf).unwrap() {
            got.push(m);
        }
    }
    assert_eq!(got, msgs);
    assert!(buf.is_empty());
    // And the other direction still works (independent keystreams and MACs).
    let mut back = Vec::new();
    b.seal(0x8f, b"reply", &mut back).unwrap();
    assert_eq!(a.open(&mut back).unwrap(), Some((0x8f, b"reply".to_vec())));
}

#[test]
fn bad_header_mac() {
    let (mut a, mut b) = pair(MAX_FRAME_SIZE_BYTES);
    let mut wire = Vec::new();
    a.seal(1, b"x", &mut wire).unwrap();
    wire[20] ^= 1;
    assert_eq!(b.open(&mut wire), Err(FrameError::BadHeaderMac));
    let (mut a, mut b) = pair(MAX_FRAME_SIZE_BYTES);
    let mut wire = Vec::new();
    a.seal(1, b"x", &mut wire).unwrap();
    wire[0] ^= 1;
    assert_eq!(b.open(&mut wire), Err(FrameError::BadHeaderMac));
}

#[test]
fn bad_frame_mac() {
    let (mut a, mut b) = pair(MAX_FRAME_SIZE_BYTES);
    let mut wire = Vec::new();
    a.seal(1, b"payload", &mut wire).unwrap();
    wire[33] ^= 1;
    assert_eq!(b.open(&mut wire), Err(FrameError::BadFrameMac));
    let (mut a, mut b) = pair(MAX_FRAME_SIZE_BYTES);
    let mut wire = Vec::new();
    a.seal(1, b"payload", &mut wire).unwrap();
    let last = wire.len() - 1;
    wire[last] ^= 1;
    assert_eq!(b.open(&mut wire), Err(FrameError::BadFrameMac));
}

#[test]
fn oversize_frames() {
    let (mut a, _) = pair(100);
    let mut out = Vec::new();
    assert_eq!(
        a.seal(1, &[0; 100], &mut out),
        Err(FrameError::FrameTooLarge {
            size: 101,
            max: 100
        })
    );
    assert!(out.is_empty());
    a.seal(1, &[0; 99], &mut out).unwrap();
    // A receiver with a smaller limit refuses after the header, before buffering the body.
    let (mut big, mut small) = pair(1000);
    small.max_frame_size = 50;
    let mut wire = Vec::new();
    big.seal(1, &[0; 60], &mut wire).unwrap();
    let mut head = wire[..32].to_vec();
    assert_eq!(
        small.open(&mut head),
        Err(FrameError::FrameTooLarge { size: 61, max: 50 })
    );
    assert_eq!(
        FrameCodec::new_fake_mac(&[0; 32], &[0; 32]).max_frame_size(),
        MAX_FRAME_SIZE_BYTES
    );
}

#[test]
fn message_code_encoding() {
    let (mut a, mut b) = pair(MAX_FRAME_SIZE_BYTES);
    for code in [0u64, 1, 0x10, 0x7f, 0x80, 0x8f, u64::MAX] {
        let mut wire = Vec::new();
        a.seal(code, b"", &mut wire).unwrap();
        assert_eq!(b.open(&mut wire).unwrap(), Some((code, vec![])));
    }
}

proptest! {
    #[test]
    fn seal_open_roundtrip(
        msgs in proptest::collection::vec((any::<u64>(), proptest::collection::vec(any::<u8>(), 0..300)), 1..8),
        chunk in 1usize..64,
    ) {
        let (mut a, mut b) = pair(MAX_FRAME_SIZE_BYTES);
        let mut wire = Vec::new();
        for (code, payload) in &msgs {
            a.seal(*code, payload, &mut wire).unwrap();
        }
        let mut buf = Vec::new();
        let mut got = Vec::new();
        for piece in wire.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(m) = b.open(&mut buf).unwrap() {
                got.push(m);
            }
        }
        prop_assert_eq!(got, msgs);
    }

    #[test]
    fn open_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let (_, mut b) = pair(1 << 20);
        let mut buf = bytes;
        for _ in 0..4 {
            match b.open(&mut buf) {
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        let mut fake = FrameCodec::new_fake_mac(&[3; 32], &[4; 32]);
        let mut buf2: Vec<u8> = buf.clone();
        let _ = fake.open(&mut buf2);
    }
}

/// `open_prefix` with a read offset gives the same frames as `open` with draining, whatever
/// the chunking: whole buffer, uneven chunks, byte by byte.
#[test]
fn open_prefix_by_offset_matches_open() {
    let msgs: Vec<(u64, Vec<u8>)> = (0..30u64)
        .map(|i| (i * 5, vec![(i * 3) as u8; (i * 29 % 300) as usize]))
        .collect();
    for chunk in [usize::MAX, 1, 7, 100, 1_000] {
        let (mut a, mut b) = pair(MAX_FRAME_SIZE_BYTES);
        let mut wire = Vec::new();
        for (code, payload) in &msgs {
            a.seal(*code, payload, &mut wire).unwrap();
        }
        let mut buf = Vec::new();
        let mut pos = 0;
        let mut got = Vec::new();
        for piece in wire.chunks(chunk.min(wire.len())) {
            buf.extend_from_slice(piece);
            loop {
                let (used, frame) = b.open_prefix(&mut buf[pos..]).unwrap();
                pos += used;
                match frame {
                    Some(m) => got.push(m),
                    None => break,
                }
            }
            // Compact as a reader would, once per chunk.
            buf.drain(..pos);
            pos = 0;
        }
        assert_eq!(got, msgs, "chunk {chunk}");
        assert!(buf.is_empty(), "chunk {chunk}");
    }
}
