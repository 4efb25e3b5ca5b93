//! Every drop of the MVDS machine is counted under its own reason, and `Stats::counters`
//! lists every field.

use super::*;

fn payload(p: Payload) -> Vec<u8> {
    encode_payload(&p, Numbering::Status2019)
}

#[test]
fn counters_list_every_field() {
    let stats = Stats::default();
    crate::stats::assert_lists_every_field(&format!("{stats:?}"), &stats.counters());
}

#[test]
fn each_drop_reason_increments_its_own_counter() {
    let reasons = |m: &Mvds| -> Vec<(String, u64)> {
        m.stats()
            .counters()
            .into_iter()
            .filter(|(n, v)| {
                *v > 0
                    && !matches!(
                        n.as_str(),
                        "payloads_received" | "delivered" | "payloads_sent" | "bytes_sent"
                    )
            })
            .collect()
    };
    let one = |name: &str| vec![(name.to_owned(), 1u64)];

    // Undecodable bytes.
    let mut m = Mvds::new(Config::default(), T0).unwrap();
    assert!(m.handle_payload(T0, peer(2), &[0xff]).is_err());
    assert_eq!(reasons(&m), one("payloads_undecodable"));

    // A REQUEST for a message we do not hold.
    let mut m = Mvds::new(Config::default(), T0).unwrap();
    let req = payload(Payload {
        requests: vec![[9; 32]],
        ..Payload::default()
    });
    m.handle_payload(T0, peer(2), &req).unwrap();
    assert_eq!(reasons(&m), one("requests_unknown_message"));

    // A REQUEST from a peer outside the message's group.
    let mut m = Mvds::new(Config::default(), T0).unwrap();
    m.add_peer(T0, GROUP, peer(2)).unwrap();
    let id = m
        .send(T0, GROUP, b"mine".to_vec(), SendOptions::default())
        .unwrap();
    let req = payload(Payload {
        requests: vec![id],
        ..Payload::default()
    });
    m.handle_payload(T0, peer(3), &req).unwrap();
    assert_eq!(reasons(&m), one("requests_not_member"));

    // A MESSAGE received twice.
    let mut m = Mvds::new(Config::default(), T0).unwrap();
    let msg = payload(Payload {
        messages: vec![sample_message(b"twice", vec![], false)],
        ..Payload::default()
    });
    m.handle_payload(T0, peer(2), &msg).unwrap();
    m.handle_payload(T0, peer(2), &msg).unwrap();
    assert_eq!(reasons(&m), one("duplicates"));

    // A full store.
    let mut m = Mvds::new(
        Config {
            max_stored_messages: 1,
            ..Config::default()
        },
        T0,
    )
    .unwrap();
    let two = payload(Payload {
        messages: vec![
            sample_message(b"first", vec![], false),
            sample_message(b"second", vec![], false),
        ],
        ..Payload::default()
    });
    m.handle_payload(T0, peer(2), &two).unwrap();
    assert_eq!(reasons(&m), one("dropped_store_full"));

    // A full sync-state table (OFFERs become REQUEST records).
    let mut m = Mvds::new(
        Config {
            max_sync_states: 1,
            ..Config::default()
        },
        T0,
    )
    .unwrap();
    let offers = payload(Payload {
        offers: vec![[1; 32], [2; 32]],
        ..Payload::default()
    });
    m.handle_payload(T0, peer(2), &offers).unwrap();
    assert_eq!(reasons(&m), one("states_dropped"));
}
