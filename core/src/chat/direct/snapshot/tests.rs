use proptest::prelude::*;
use secp256k1::SecretKey;

use super::*;
use crate::chat::format::{ChatFormat, ChatKind};
use crate::chat::service::ChatMessage;
use crate::ecies::public_key;
use crate::mvds::PeerId;
use crate::security::service::{InstallationRecord, SessionKey};

fn key(i: u8) -> secp256k1::PublicKey {
    public_key(&SecretKey::from_byte_array(&[i.max(1); 32]).unwrap())
}

/// One record of the kinds a generated log is made of (`i` picks among a few keys, so
/// upserts, deletions and re-insertions collide often).
fn simple(kind: u8, i: u8, j: u8) -> Record {
    match kind % 13 {
        0 => Record::Contact(key(i % 4 + 1)),
        1 => Record::Negotiated {
            peer: key(i % 3 + 1),
            installation_id: ["", "a", "b"][usize::from(j % 3)].to_string(),
        },
        2 => Record::Outgoing {
            id: [i % 4; 32],
            to: vec![key(j % 2 + 1)],
            plaintext: vec![j],
        },
        3 => Record::Posted { id: [i % 4; 32] },
        4 => Record::ContactCodePublished {
            at_ms: u64::from(j),
        },
        5 => Record::ChatFormat(ChatFormat {
            kind: if i.is_multiple_of(2) {
                ChatKind::Public
            } else {
                ChatKind::Direct
            },
            chat: format!("c{}", j % 3),
            setting: None,
            observed: None,
        }),
        6 => Record::Message(StoredMessage {
            group: i.is_multiple_of(2),
            message: ChatMessage {
                chat: format!("c{}", i % 3),
                from: key(1).serialize_uncompressed(),
                text: format!("t{j}"),
                clock: u64::from(j),
                timestamp_ms: u64::from(j),
                message_id: [j; 32],
            },
        }),
        7 => Record::Group {
            chat_id: format!("g{}", i % 3),
            g5: vec![j],
        },
        8 => Record::Mvds(PersistRecord::Epoch(u64::from(j))),
        9 => Record::Mvds(PersistRecord::PeerAdded {
            group: [i % 2; 32],
            peer: PeerId([j % 3; 65]),
        }),
        10 => Record::Security(Persist::Installation(InstallationRecord {
            identity: vec![i % 3],
            installation_id: format!("i{}", j % 2),
            version: u32::from(j),
            ..Default::default()
        })),
        11 => Record::Security(Persist::InstallationDeleted {
            identity: vec![i % 3],
            installation_id: format!("i{}", j % 2),
        }),
        _ => Record::Security(Persist::SessionDeleted(SessionKey {
            identity: vec![i % 3],
            installation_id: String::new(),
            bundle_id: vec![],
            ephemeral: vec![],
        })),
    }
}

fn log() -> impl Strategy<Value = Vec<Record>> {
    let one = (any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(k, i, j)| simple(k, i, j));
    let item = prop_oneof![
        4 => one.clone(),
        1 => prop::collection::vec(one, 1..4).prop_map(Record::Batch),
    ];
    prop::collection::vec(item, 0..60)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Restart from snapshot + tail folds to the same state as the full log, wherever the
    /// snapshot was taken; compaction is idempotent and the snapshot encoding round-trips.
    #[test]
    fn snapshot_plus_tail_equals_the_full_log(rs in log(), cut in any::<prop::sample::Index>()) {
        let full = compact(rs.clone());
        let k = cut.index(rs.len() + 1);
        let mut resumed = compact(rs[..k].to_vec());
        resumed.extend(rs[k..].iter().cloned());
        prop_assert_eq!(compact(resumed), full.clone());
        prop_assert_eq!(compact(full.clone()), full.clone());
        prop_assert_eq!(decode_snapshot(&encode_snapshot(&full)), Ok(full));
    }

    /// Any bytes: records or a typed error, never a panic.
    #[test]
    fn decode_is_total_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_snapshot(&bytes);
        let mut versioned = vec![SNAPSHOT_VERSION];
        versioned.extend(&bytes);
        let _ = decode_snapshot(&versioned);
    }

    /// A truncated snapshot is an error, or (cut at a record boundary) a prefix of its records.
    #[test]
    fn a_truncated_snapshot_is_an_error_or_a_prefix(rs in log(), cut in any::<prop::sample::Index>()) {
        let records = compact(rs);
        let bytes = encode_snapshot(&records);
        let cut = cut.index(bytes.len());
        match decode_snapshot(&bytes[..cut]) {
            Ok(prefix) => prop_assert!(records.starts_with(&prefix)),
            Err(SnapshotError::Empty | SnapshotError::Truncated(_)) => {}
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }
}

#[test]
fn compaction_folds_what_the_log_repeats() {
    let rs = vec![
        simple(0, 0, 0),
        simple(0, 0, 0),
        simple(2, 1, 5),
        simple(3, 1, 0),
        simple(4, 0, 1),
        simple(4, 0, 9),
        simple(10, 0, 0),
        simple(11, 0, 0),
    ];
    assert_eq!(
        compact(rs),
        vec![simple(0, 0, 0), simple(4, 0, 9)],
        "contact deduplicated, posted outgoing gone, last contact code, deleted installation gone"
    );
}

#[test]
fn typed_errors() {
    assert_eq!(decode_snapshot(&[]), Err(SnapshotError::Empty));
    assert_eq!(decode_snapshot(&[9]), Err(SnapshotError::UnknownVersion(9)));
    assert_eq!(
        decode_snapshot(&[1, 0, 0]),
        Err(SnapshotError::Truncated(1))
    );
    assert_eq!(
        decode_snapshot(&[1, 0, 0, 0, 5, 1]),
        Err(SnapshotError::Truncated(1))
    );
    assert!(matches!(
        decode_snapshot(&[1, 0, 0, 0, 1, 0xff]),
        Err(SnapshotError::Record { index: 0, .. })
    ));
}
