use super::*;
use crate::chat::transit::{C4Content, MessageType};
use crate::ecies::public_key;
use crate::rng::{rng_from_seed, seed_from_u64};
use proptest::prelude::*;
use serde_json::Value;

const CHAT_VECTORS: &str = include_str!("../../../../testdata/vectors/status_chat_vectors.json");

fn vectors() -> Value {
    serde_json::from_str(CHAT_VECTORS).unwrap()
}

fn g5_payload() -> String {
    vectors()["transit_g5_go_test"]["payload"]
        .as_str()
        .unwrap()
        .to_string()
}

fn sk(n: u64) -> SecretKey {
    let mut rng = rng_from_seed(seed_from_u64(n));
    crate::ecies::random_secret_key(&mut rng)
}

fn id(k: &SecretKey) -> String {
    member_id(&public_key(k))
}

#[test]
fn g5_vector_decodes_and_reencodes_byte_exact() {
    let p = g5_payload();
    let m = MembershipUpdateMessage::decode(p.as_bytes()).unwrap();
    let g = &vectors()["group_signature"];
    let chat_id = g["chat_id"].as_str().unwrap();
    assert_eq!(m.chat_id, chat_id);
    assert_eq!(m.message, None);
    assert_eq!(m.updates.len(), 1);
    let u = &m.updates[0];
    assert_eq!(u.chat_id, chat_id);
    assert_eq!(u.signature, g["signature_hex"].as_str().unwrap());
    assert_eq!(
        u.events,
        vec![
            GroupEvent {
                clock: 156897373998501,
                kind: GroupEventKind::ChatCreated {
                    name: "thathata".into()
                }
            },
            GroupEvent {
                clock: 156897373998502,
                kind: GroupEventKind::MembersAdded {
                    members: vec!["0x04aebe2bb01a988abe7d978662f21de7760486119876c680e5a559e38e086a2df6dad41c4e4d9079c03db3bced6cb70fca76afc5650e50ea19b81572046a813534".into()]
                }
            },
        ]
    );
    assert_eq!(String::from_utf8(m.encode()).unwrap(), p);
}

#[test]
fn signature_vector_signing_string_and_recovery() {
    let g = vectors()["group_signature"].clone();
    let m = MembershipUpdateMessage::decode(g5_payload().as_bytes()).unwrap();
    let u = &m.updates[0];
    assert_eq!(u.signing_string(), g["signing_string"].as_str().unwrap());
    let author = u.recover_author().unwrap();
    let expect = g["derived_locally"]["recovered_pubkey"].as_str().unwrap();
    assert_eq!(hex::encode(author.serialize_uncompressed()), expect);
    assert!(g["chat_id"]
        .as_str()
        .unwrap()
        .ends_with(&format!("0x{expect}")));
    // The vector folds into a valid group: creator admin, two members.
    let f = GroupState::fold(&m.chat_id, &m.updates, GroupLimits::default()).unwrap();
    assert!(f.rejected.is_empty(), "{:?}", f.rejected);
    assert_eq!(f.state.name(), "thathata");
    assert_eq!(f.state.creator(), Some(format!("0x{expect}").as_str()));
    assert_eq!(f.state.members().len(), 2);
    assert_eq!(f.state.admins().len(), 1);
}

#[test]
fn go_json_escaping() {
    assert_eq!(go_json_string("a<b>&c"), r#""a\u003cb\u003e\u0026c""#);
    assert_eq!(go_json_string("q\"\\\n\r\t"), r#""q\"\\\n\r\t""#);
    assert_eq!(go_json_string("\u{8}\u{c}\u{1}"), r#""\u0008\u000c\u0001""#);
    assert_eq!(go_json_string("\u{2028}\u{2029}é"), "\"\\u2028\\u2029é\"");
}

#[test]
fn signing_sorts_events_and_members_and_omits_empty() {
    let chat = "c";
    let ev = vec![
        GroupEvent {
            clock: 2,
            kind: GroupEventKind::MembersAdded {
                members: vec!["0xb".into(), "0xa".into()],
            },
        },
        GroupEvent {
            clock: 1,
            kind: GroupEventKind::NameChanged {
                name: String::new(),
            },
        },
    ];
    let u = MembershipUpdate {
        chat_id: chat.into(),
        events: ev,
        signature: String::new(),
    };
    assert_eq!(
        u.signing_string(),
        r#"[[[["clock-value",1],["type","name-changed"]],[["clock-value",2],["members",["0xa","0xb"]],["type","members-added"]]],"c"]"#
    );
    assert_eq!(u.recover_author(), Err(GroupError::Unsigned));
    let bad = MembershipUpdate {
        signature: "zz".into(),
        ..u.clone()
    };
    assert_eq!(bad.recover_author(), Err(GroupError::BadSignature));
}

fn created(
    chat: &str,
    creator: &SecretKey,
    name: &str,
    members: &[&SecretKey],
) -> MembershipUpdate {
    let mut events = vec![GroupEvent {
        clock: 100,
        kind: GroupEventKind::ChatCreated { name: name.into() },
    }];
    if !members.is_empty() {
        events.push(GroupEvent {
            clock: 101,
            kind: GroupEventKind::MembersAdded {
                members: members.iter().map(|k| id(k)).collect(),
            },
        });
    }
    MembershipUpdate::sign(chat, events, creator)
}

fn one(chat: &str, by: &SecretKey, clock: u64, kind: GroupEventKind) -> MembershipUpdate {
    MembershipUpdate::sign(chat, vec![GroupEvent { clock, kind }], by)
}

#[test]
fn sign_verify_roundtrip_and_chat_id_format() {
    let a = sk(1);
    let mut rng = rng_from_seed(seed_from_u64(9));
    let chat = new_chat_id(&mut rng, &public_key(&a));
    assert_eq!(chat.len(), 36 + MEMBER_ID_LEN);
    assert_eq!(&chat[14..15], "4", "uuid version nibble");
    assert!(chat_id_matches_creator(&chat, &id(&a)));
    assert!(!chat_id_matches_creator(&id(&a), &id(&a)));
    let u = created(&chat, &a, "friends", &[&sk(2)]);
    assert_eq!(member_id(&u.recover_author().unwrap()), id(&a));
    let msg = MembershipUpdateMessage {
        chat_id: chat.clone(),
        updates: vec![u.clone()],
        message: Some(crate::chat::C4Message {
            text: "hi".into(),
            content_type: "text/plain".into(),
            message_type: MessageType::GroupUserMessage,
            clock: 102,
            timestamp_ms: 5,
            content: C4Content {
                chat_id: chat.clone(),
                text: "hi".into(),
                ..Default::default()
            },
        }),
    };
    let enc = msg.encode();
    let dec = MembershipUpdateMessage::decode(&enc).unwrap();
    assert_eq!(dec, msg);
    assert_eq!(member_id(&dec.updates[0].recover_author().unwrap()), id(&a));
    // A tampered event recovers someone else.
    let mut t = u.clone();
    t.events[0].kind = GroupEventKind::ChatCreated {
        name: "evil".into(),
    };
    assert_ne!(member_id(&t.recover_author().unwrap()), id(&a));
}

#[test]
fn admin_rules() {
    let (a, b, c, d) = (sk(1), sk(2), sk(3), sk(4));
    let mut rng = rng_from_seed(seed_from_u64(1));
    let chat = new_chat_id(&mut rng, &public_key(&a));
    let l = GroupLimits::default();
    let base = created(&chat, &a, "g", &[&b, &c]);

    // Non-admin cannot add, rename, or remove others.
    let ups = vec![
        base.clone(),
        one(
            &chat,
            &b,
            200,
            GroupEventKind::MembersAdded {
                members: vec![id(&d)],
            },
        ),
        one(
            &chat,
            &b,
            201,
            GroupEventKind::NameChanged { name: "x".into() },
        ),
        one(
            &chat,
            &b,
            202,
            GroupEventKind::MemberRemoved { member: id(&c) },
        ),
        one(
            &chat,
            &a,
            203,
            GroupEventKind::NameChanged { name: "  ".into() },
        ),
        one(
            &chat,
            &b,
            204,
            GroupEventKind::MemberJoined { member: id(&c) },
        ),
        one(
            &chat,
            &d,
            205,
            GroupEventKind::MemberJoined { member: id(&d) },
        ),
        one(
            &chat,
            &a,
            206,
            GroupEventKind::AdminsAdded {
                members: vec![id(&d)],
            },
        ),
        one(
            &chat,
            &a,
            207,
            GroupEventKind::AdminRemoved { member: id(&a) },
        ),
        one(
            &chat,
            &a,
            208,
            GroupEventKind::MembersAdded {
                members: vec!["0xABC".into()],
            },
        ),
    ];
    let f = GroupState::fold(&chat, &ups, l).unwrap();
    let errs: Vec<_> = f.rejected.iter().map(|r| r.error.clone()).collect();
    assert_eq!(
        errs,
        vec![
            GroupError::NotAdmin("members-added"),
            GroupError::NotAdmin("name-changed"),
            GroupError::NotAdmin("member-removed"),
            GroupError::BlankName,
            GroupError::NotSelf("member-joined"),
            GroupError::NotMember("member-joined"),
            GroupError::NotMember("admins-added"),
            GroupError::LastAdmin,
            GroupError::InvalidMember("0xABC".into()),
        ]
    );
    assert_eq!(f.state.name(), "g");
    assert_eq!(f.state.members().len(), 3);
    assert!(f.state.is_admin(&id(&a)));

    // Valid flow: join, rename, promote, admin drops rights, leave, admin removes.
    let ups2 = vec![
        base.clone(),
        one(
            &chat,
            &b,
            300,
            GroupEventKind::MemberJoined { member: id(&b) },
        ),
        one(
            &chat,
            &a,
            301,
            GroupEventKind::NameChanged { name: "new".into() },
        ),
        one(
            &chat,
            &a,
            302,
            GroupEventKind::AdminsAdded {
                members: vec![id(&b)],
            },
        ),
        // b is admin now: c cannot remove b, b can add d.
        one(
            &chat,
            &c,
            303,
            GroupEventKind::MemberRemoved { member: id(&b) },
        ),
        one(
            &chat,
            &b,
            304,
            GroupEventKind::MembersAdded {
                members: vec![id(&d)],
            },
        ),
        // a drops admin, then leaves; c leaves; b removes d.
        one(
            &chat,
            &a,
            305,
            GroupEventKind::AdminRemoved { member: id(&a) },
        ),
        one(
            &chat,
            &a,
            306,
            GroupEventKind::MemberRemoved { member: id(&a) },
        ),
        one(
            &chat,
            &c,
            307,
            GroupEventKind::MemberRemoved { member: id(&c) },
        ),
        one(
            &chat,
            &b,
            308,
            GroupEventKind::MemberRemoved { member: id(&d) },
        ),
        // a is gone: cannot act any more.
        one(
            &chat,
            &a,
            309,
            GroupEventKind::NameChanged {
                name: "back".into(),
            },
        ),
    ];
    let f = GroupState::fold(&chat, &ups2, l).unwrap();
    let errs: Vec<_> = f.rejected.iter().map(|r| r.error.clone()).collect();
    assert_eq!(
        errs,
        vec![
            GroupError::TargetIsAdmin,
            GroupError::NotAdmin("name-changed")
        ]
    );
    assert_eq!(f.state.name(), "new");
    assert_eq!(
        f.state.members().iter().cloned().collect::<Vec<_>>(),
        vec![id(&b)]
    );
    assert_eq!(
        f.state.admins().iter().cloned().collect::<Vec<_>>(),
        vec![id(&b)]
    );
    assert!(f.state.joined().contains(&id(&b)));
    assert_eq!(f.state.last_clock(), 308);
}

#[test]
fn fold_orders_by_clock_dedups_and_checks_ids() {
    let (a, b, c) = (sk(1), sk(2), sk(3));
    let mut rng = rng_from_seed(seed_from_u64(2));
    let chat = new_chat_id(&mut rng, &public_key(&a));
    let l = GroupLimits::default();
    let base = created(&chat, &a, "g", &[&b]);
    let rename = one(
        &chat,
        &a,
        150,
        GroupEventKind::NameChanged { name: "r".into() },
    );
    // Arrival order does not matter; duplicates are counted once.
    let f1 = GroupState::fold(&chat, &[rename.clone(), base.clone(), base.clone()], l).unwrap();
    let f2 = GroupState::fold(&chat, &[base.clone(), rename.clone()], l).unwrap();
    assert_eq!(f1, f2);
    assert_eq!(f1.state.name(), "r");
    // An event older than chat-created is rejected.
    let early = one(
        &chat,
        &a,
        50,
        GroupEventKind::NameChanged { name: "e".into() },
    );
    let f = GroupState::fold(&chat, &[base.clone(), early], l).unwrap();
    assert_eq!(f.rejected[0].error, GroupError::NotCreated);
    // An update for another chat, an unsigned one and a forged creator.
    let other = one(
        "x",
        &a,
        160,
        GroupEventKind::NameChanged { name: "o".into() },
    );
    let mut unsigned = one(
        &chat,
        &a,
        161,
        GroupEventKind::NameChanged { name: "u".into() },
    );
    unsigned.signature.clear();
    let f = GroupState::fold(&chat, &[base.clone(), other, unsigned], l).unwrap();
    assert!(matches!(
        f.rejected[0].error,
        GroupError::ChatIdMismatch { .. }
    ));
    assert_eq!(f.rejected[1].error, GroupError::Unsigned);
    assert_eq!(f.state.name(), "g");
    let forged = created(&chat, &c, "mine", &[]);
    assert_eq!(
        GroupState::fold(&chat, std::slice::from_ref(&forged), l),
        Err(GroupError::NoCreator)
    );
    // The real creation wins over the forged one (forged rejected: invalid chat id / exists).
    let f = GroupState::fold(&chat, &[forged, base.clone()], l).unwrap();
    assert_eq!(f.state.creator(), Some(id(&a).as_str()));
    assert_eq!(f.rejected.len(), 1);
    // apply refuses regressions and leaves state unchanged.
    let mut s = f.state.clone();
    let ev = SignedEvent {
        event: GroupEvent {
            clock: 1,
            kind: GroupEventKind::NameChanged { name: "z".into() },
        },
        author: id(&a),
    };
    assert!(matches!(
        s.apply(&ev),
        Err(GroupError::ClockRegression { .. })
    ));
    assert_eq!(s, f.state);
}

#[test]
fn member_limit() {
    let a = sk(1);
    let mut rng = rng_from_seed(seed_from_u64(3));
    let chat = new_chat_id(&mut rng, &public_key(&a));
    let others: Vec<SecretKey> = (10..13).map(sk).collect();
    let refs: Vec<&SecretKey> = others.iter().collect();
    let u = created(&chat, &a, "g", &refs);
    let f = GroupState::fold(
        &chat,
        std::slice::from_ref(&u),
        GroupLimits { max_members: 3 },
    )
    .unwrap();
    assert_eq!(f.rejected[0].error, GroupError::TooManyMembers { max: 3 });
    assert_eq!(f.state.members().len(), 1);
    let f = GroupState::fold(&chat, &[u], GroupLimits { max_members: 4 }).unwrap();
    assert_eq!(f.state.members().len(), 4);
}

#[test]
fn decode_errors_are_typed() {
    let cases: &[&[u8]] = &[
        b"",
        b"{}",
        br#"["~#c4",[]]"#,
        br#"["~#g5",[]]"#,
        br#"["~#g5",["id"]]"#,
        br#"["~#g5",["id",["~#list",[1]]]]"#,
        br#"["~#g5",["id",["~#list",[["^ ","~:chat-id","id","~:events",[["^ ","~:type","nope","~:clock-value",1]]]]]]]"#,
        br#"["~#g5",["id",["~#list",[["^ ","~:chat-id","id","~:events",[["^ ","~:type","members-added","~:clock-value",-1]]]]]]]"#,
        br#"["~#g5",["id",[],["~#c4",[1]]]]"#,
        br#"["~#g5",["id",[],"^9"]]"#,
    ];
    for c in cases {
        assert!(
            MembershipUpdateMessage::decode(c).is_err(),
            "{}",
            String::from_utf8_lossy(c)
        );
    }
    assert!(matches!(
        MembershipUpdateMessage::decode(cases[6]),
        Err(GroupError::UnknownEventType(t)) if t == "nope"
    ));
    // Minimal valid forms: plain array of updates, no message, unsigned update.
    let m = MembershipUpdateMessage::decode(
        br#"["~#g5",["id",[["^ ","~:chat-id","id","~:events",[]]]]]"#,
    )
    .unwrap();
    assert_eq!(m.updates[0].signature, "");
}

#[test]
fn parse_member_id_is_strict() {
    let a = sk(1);
    let good = id(&a);
    assert_eq!(parse_member_id(&good).unwrap(), public_key(&a));
    assert!(parse_member_id(&good.to_uppercase().replacen("0X", "0x", 1)).is_err());
    assert!(parse_member_id(&good[2..]).is_err());
    assert!(parse_member_id(&good[..good.len() - 2]).is_err());
    let compressed = format!("0x{}", hex::encode(public_key(&a).serialize()));
    assert!(parse_member_id(&compressed).is_err());
}

proptest! {
    #[test]
    fn g5_decoder_total(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = MembershipUpdateMessage::decode(&bytes);
    }

    #[test]
    fn g5_truncations_and_mutations(cut in 0usize..2000, pos in 0usize..2000, byte in any::<u8>()) {
        let p = g5_payload().into_bytes();
        let _ = MembershipUpdateMessage::decode(&p[..cut.min(p.len())]);
        let mut m = p.clone();
        let i = pos % m.len();
        m[i] = byte;
        let _ = MembershipUpdateMessage::decode(&m);
    }

    #[test]
    fn g5_roundtrip(name in ".{0,20}", clock in any::<u64>(), n in 0usize..4, sig in "[0-9a-f]{0,4}") {
        let members: Vec<String> = (0..n).map(|i| format!("~m{i}^")).collect();
        let msg = MembershipUpdateMessage {
            chat_id: format!("~{name}"),
            updates: vec![MembershipUpdate {
                chat_id: name.clone(),
                events: vec![
                    GroupEvent { clock, kind: GroupEventKind::ChatCreated { name: name.clone() } },
                    GroupEvent { clock, kind: GroupEventKind::MembersAdded { members } },
                    GroupEvent { clock, kind: GroupEventKind::MemberRemoved { member: name.clone() } },
                ],
                signature: sig,
            }],
            message: None,
        };
        prop_assert_eq!(MembershipUpdateMessage::decode(&msg.encode()).unwrap(), msg);
    }
}

#[test]
fn tampered_copy_with_genuine_signature_does_not_shadow_the_original() {
    let (a, b) = (sk(1), sk(2));
    let mut rng = rng_from_seed(seed_from_u64(4));
    let chat = new_chat_id(&mut rng, &public_key(&a));
    let base = created(&chat, &a, "g", &[&b]);
    let mut forged = base.clone();
    forged.events[0].kind = GroupEventKind::ChatCreated {
        name: "evil".into(),
    };
    let f = GroupState::fold(&chat, &[forged, base], GroupLimits::default()).unwrap();
    assert_eq!(f.state.name(), "g");
    assert!(f.state.is_member(&id(&b)));
}

#[test]
fn member_order_in_transit_does_not_affect_the_signature() {
    let a = sk(1);
    let ids: Vec<String> = (20..24).map(|n| id(&sk(n))).collect();
    let mut u = MembershipUpdate::sign(
        "x",
        vec![GroupEvent {
            clock: 1,
            kind: GroupEventKind::MembersAdded { members: ids },
        }],
        &a,
    );
    if let GroupEventKind::MembersAdded { members } = &mut u.events[0].kind {
        members.reverse();
    }
    assert_eq!(member_id(&u.recover_author().unwrap()), id(&a));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Any sequence of events by any of four keys folds without panicking, and the result keeps
    /// the invariants: a creator exists, admins are members, there is at least one admin, the
    /// member cap holds.
    #[test]
    fn fold_invariants(ops in proptest::collection::vec((0usize..4, 0u8..7, 0usize..4, 1u64..50), 0..16)) {
        let keys: Vec<SecretKey> = (1..=4).map(sk).collect();
        let mut rng = rng_from_seed(seed_from_u64(5));
        let chat = new_chat_id(&mut rng, &public_key(&keys[0]));
        let mut updates = vec![created(&chat, &keys[0], "g", &[])];
        for (author, kind, target, clock) in ops {
            let t = id(&keys[target]);
            let kind = match kind {
                0 => GroupEventKind::NameChanged { name: format!("n{clock}") },
                1 => GroupEventKind::MembersAdded { members: vec![t] },
                2 => GroupEventKind::MemberJoined { member: t },
                3 => GroupEventKind::AdminsAdded { members: vec![t] },
                4 => GroupEventKind::MemberRemoved { member: t },
                5 => GroupEventKind::AdminRemoved { member: t },
                _ => GroupEventKind::ChatCreated { name: "again".into() },
            };
            updates.push(one(&chat, &keys[author], 100 + clock, kind));
        }
        let limits = GroupLimits { max_members: 3 };
        let f = GroupState::fold(&chat, &updates, limits).unwrap();
        let s = &f.state;
        let creator = id(&keys[0]);
        prop_assert_eq!(s.creator(), Some(creator.as_str()));
        prop_assert!(!s.admins().is_empty());
        prop_assert!(s.admins().is_subset(s.members()));
        prop_assert!(s.joined().is_subset(s.members()));
        prop_assert!(s.members().len() <= 3);
        // Order of arrival does not matter.
        let mut rev = updates.clone();
        rev.reverse();
        prop_assert_eq!(&GroupState::fold(&chat, &rev, limits).unwrap().state, s);
    }
}
