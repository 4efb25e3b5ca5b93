use super::*;
use proptest::prelude::*;
use serde_json::Value;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors/");

fn load(name: &str) -> Value {
    let path = format!("{VECTORS}{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// Decimal string to minimal big-endian bytes (for the "#bigint" inputs).
fn decimal_to_be(digits: &str) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::new(); // little-endian base-256
    for d in digits.bytes() {
        let mut carry = (d - b'0') as u32;
        for byte in out.iter_mut() {
            let v = *byte as u32 * 10 + carry;
            *byte = v as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            out.push(carry as u8);
            carry >>= 8;
        }
    }
    out.reverse();
    out
}

fn encode_json(e: &mut Encoder, v: &Value) {
    match v {
        Value::String(s) if s.starts_with('#') => {
            e.uint_bytes(&decimal_to_be(&s[1..]));
        }
        Value::String(s) => {
            e.bytes(s.as_bytes());
        }
        Value::Number(n) => {
            e.u64(n.as_u64().unwrap());
        }
        Value::Array(items) => {
            e.list(|e| items.iter().for_each(|i| encode_json(e, i)));
        }
        other => panic!("unexpected {other}"),
    }
}

fn check_decoded(item: Rlp<'_>, v: &Value) {
    match v {
        Value::String(s) if s.starts_with('#') => {
            assert_eq!(
                item.uint_bytes(64).unwrap(),
                decimal_to_be(&s[1..]).as_slice()
            )
        }
        Value::String(s) => assert_eq!(item.bytes().unwrap(), s.as_bytes()),
        Value::Number(n) => assert_eq!(item.u64().unwrap(), n.as_u64().unwrap()),
        Value::Array(items) => {
            let mut list = item.list().unwrap();
            for i in items {
                check_decoded(list.item().unwrap(), i);
            }
            list.finish().unwrap();
        }
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn ethereum_tests_valid() {
    let Value::Object(cases) = load("ethereum_tests_rlptest.json") else {
        panic!()
    };
    assert!(cases.len() > 20);
    for (name, case) in cases {
        let expected = hex::decode(case["out"].as_str().unwrap().trim_start_matches("0x")).unwrap();
        let mut e = Encoder::new();
        encode_json(&mut e, &case["in"]);
        assert_eq!(e.finish(), expected, "encode {name}");
        let item = Rlp::new(&expected).unwrap_or_else(|err| panic!("decode {name}: {err}"));
        item.validate().unwrap();
        check_decoded(item, &case["in"]);
    }
}

#[test]
fn ethereum_tests_invalid() {
    let Value::Object(cases) = load("ethereum_tests_invalidRLPTest.json") else {
        panic!()
    };
    assert!(cases.len() > 10);
    for (name, case) in cases {
        let bytes = hex::decode(case["out"].as_str().unwrap().trim_start_matches("0x")).unwrap();
        let result = Rlp::new(&bytes).and_then(|item| {
            item.validate()?;
            // Some cases are invalid only as typed values (integers with leading zeros).
            if !item.is_list() && !item.bytes()?.is_empty() && item.bytes()?.len() <= 32 {
                if let Err(e) = item.uint_bytes(32) {
                    if name.contains("Zero") || name.contains("zero") {
                        return Err(e);
                    }
                }
            }
            Ok(())
        });
        assert!(result.is_err(), "{name} must be rejected: {}", case["out"]);
    }
}

#[test]
fn go_strictness() {
    assert_eq!(
        Rlp::new(&[0x81, 0x05]).unwrap_err(),
        RlpError::NonCanonicalSize
    );
    assert_eq!(
        Rlp::new(&[0x82, 0x00, 0x01]).unwrap().u64().unwrap_err(),
        RlpError::NonCanonicalInteger
    );
    assert_eq!(
        Rlp::new(&[0xb8, 0x05, 1, 2, 3, 4, 5]).unwrap_err(),
        RlpError::NonCanonicalSize
    );
    assert_eq!(
        Rlp::new(&[0x02]).unwrap().bool().unwrap_err(),
        RlpError::InvalidBool
    );
    assert!(Rlp::new(&[0x01]).unwrap().bool().unwrap());
    assert!(!Rlp::new(&[0x80]).unwrap().bool().unwrap());
    assert_eq!(
        Rlp::new(&[0x82, 1, 2]).unwrap().fixed::<4>().unwrap_err(),
        RlpError::WrongLength {
            expected: 4,
            found: 2
        }
    );
    assert_eq!(
        Rlp::new(&[0x80, 0x80]).unwrap_err(),
        RlpError::TrailingBytes { extra: 1 }
    );
    let mut l = Rlp::new(&[0xc2, 0x01, 0x02]).unwrap().list().unwrap();
    l.item().unwrap();
    assert_eq!(l.clone().finish().unwrap_err(), RlpError::TooManyElements);
    l.item().unwrap();
    assert_eq!(l.item().unwrap_err(), RlpError::TooFewElements);
    assert_eq!(
        Rlp::new(&[0x85, 1, 2, 3, 4, 5]).unwrap().u32().unwrap_err(),
        RlpError::IntegerTooLarge { len: 5, max: 4 }
    );
}

#[test]
fn deep_nesting_is_bounded() {
    let mut bytes = vec![0xc0u8];
    for _ in 0..(MAX_DEPTH + 2) {
        let mut e = Encoder::new();
        e.list(|e| {
            e.raw(&bytes);
        });
        bytes = e.finish();
    }
    assert_eq!(
        Rlp::new(&bytes).unwrap().validate().unwrap_err(),
        RlpError::TooDeep
    );
}

#[derive(Debug, Clone)]
enum Tree {
    Bytes(Vec<u8>),
    List(Vec<Tree>),
}

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = proptest::collection::vec(any::<u8>(), 0..80).prop_map(Tree::Bytes);
    leaf.prop_recursive(4, 64, 8, |inner| {
        proptest::collection::vec(inner, 0..8).prop_map(Tree::List)
    })
}

fn encode_tree(e: &mut Encoder, t: &Tree) {
    match t {
        Tree::Bytes(b) => {
            e.bytes(b);
        }
        Tree::List(items) => {
            e.list(|e| items.iter().for_each(|i| encode_tree(e, i)));
        }
    }
}

fn decode_tree(item: Rlp<'_>) -> Tree {
    if item.is_list() {
        let mut out = Vec::new();
        let mut l = item.list().unwrap();
        while let Some(i) = l.next_item().unwrap() {
            out.push(decode_tree(i));
        }
        Tree::List(out)
    } else {
        Tree::Bytes(item.bytes().unwrap().to_vec())
    }
}

fn eq_tree(a: &Tree, b: &Tree) -> bool {
    match (a, b) {
        (Tree::Bytes(x), Tree::Bytes(y)) => x == y,
        (Tree::List(x), Tree::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| eq_tree(a, b))
        }
        _ => false,
    }
}

proptest! {
    #[test]
    fn roundtrip(t in tree()) {
        let mut e = Encoder::new();
        encode_tree(&mut e, &t);
        let bytes = e.finish();
        let item = Rlp::new(&bytes).unwrap();
        item.validate().unwrap();
        prop_assert!(eq_tree(&decode_tree(item), &t));
        // Every strict prefix is rejected with a typed error.
        for cut in 0..bytes.len() {
            prop_assert!(Rlp::new(&bytes[..cut]).and_then(|i| i.validate()).is_err());
        }
    }

    #[test]
    fn u64_roundtrip(v in any::<u64>()) {
        let bytes = encode_u64(v);
        prop_assert_eq!(Rlp::new(&bytes).unwrap().u64().unwrap(), v);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(item) = Rlp::new(&bytes) {
            let _ = item.validate();
            let _ = item.u64();
            let _ = item.bool();
            let _ = item.fixed::<32>();
            if let Ok(mut l) = item.list() {
                while let Ok(Some(i)) = l.next_item() {
                    let _ = i.bytes();
                }
            }
        }
    }
}

#[test]
fn list_header_matches_the_encoder() {
    for len in [0usize, 1, 55, 56, 57, 255, 256, 65_535, 65_536, 1 << 24] {
        let mut e = Encoder::new();
        let item = vec![0x80u8; len];
        e.list(|e| {
            e.raw(&item);
        });
        let full = e.finish();
        let (h, n) = list_header(len);
        assert_eq!(n, header_len(len), "len {len}");
        assert_eq!(&h[..n], &full[..full.len() - len], "len {len}");
    }
}
