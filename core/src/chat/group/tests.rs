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
                    name: "thathata".into(),
                    member: String::new(),
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
        kind: GroupEventKind::ChatCreated {
            name: name.into(),
            member: id(creator),
        },
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
    // status-go `groupChatID`: uuid + "-" + 0x-hex(creator).
    assert_eq!(chat.len(), 36 + 1 + MEMBER_ID_LEN);
    assert_eq!(&chat[14..15], "4", "uuid version nibble");
    assert_eq!(&chat[36..37], "-");
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
        member: id(&a),
    };
    assert_ne!(member_id(&t.recover_author().unwrap()), id(&a));
}

/// status-go v0.36 `validateEvent`: every refusal, with the error hush reports.
#[test]
fn admin_rules() {
    let (a, b, c, d) = (sk(1), sk(2), sk(3), sk(4));
    let mut rng = rng_from_seed(seed_from_u64(1));
    let chat = new_chat_id(&mut rng, &public_key(&a));
    let l = GroupLimits::default();
    let base = created(&chat, &a, "g", &[&b, &c]);
    let k = |by: &SecretKey, clock: u64, kind: GroupEventKind| one(&chat, by, clock, kind);

    let ups = vec![
        base.clone(),
        k(
            &b,
            200,
            GroupEventKind::MembersAdded {
                members: vec![id(&d)],
            },
        ),
        k(&b, 201, GroupEventKind::NameChanged { name: "x".into() }),
        k(&b, 202, GroupEventKind::MemberRemoved { member: id(&c) }),
        k(
            &a,
            203,
            GroupEventKind::NameChanged {
                name: String::new(),
            },
        ),
        k(&b, 204, GroupEventKind::MemberJoined { member: id(&c) }),
        k(&d, 205, GroupEventKind::MemberJoined { member: id(&d) }),
        k(
            &a,
            206,
            GroupEventKind::AdminsAdded {
                members: vec![id(&d)],
            },
        ),
        k(&a, 207, GroupEventKind::AdminsAdded { members: vec![] }),
        k(&c, 208, GroupEventKind::AdminRemoved { member: id(&c) }),
        k(&a, 209, GroupEventKind::AdminRemoved { member: id(&b) }),
        k(&a, 210, GroupEventKind::MemberRemoved { member: id(&a) }),
        k(
            &a,
            211,
            GroupEventKind::MembersAdded {
                members: vec![id(&a)],
            },
        ),
        k(
            &d,
            212,
            GroupEventKind::ChatCreated {
                name: "mine".into(),
                member: id(&d),
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
            GroupError::NoMembers("admins-added"),
            GroupError::NotAdmin("admin-removed"),
            GroupError::NotSelf("admin-removed"),
            GroupError::AlreadyCreated,
        ]
    );
    // 210/211: the admin left the members but kept its admin right, and added itself back
    // (status-go `processEvent` removes member-removed targets from the members only).
    assert_eq!(f.state.name(), "g");
    assert_eq!(f.state.members().len(), 3);
    assert!(f.state.is_admin(&id(&a)) && f.state.is_member(&id(&a)));

    // Valid flow: join, blank-looking rename (status-go only refuses an empty name),
    // promote, an admin cannot remove an admin, the last admin may leave.
    let ups2 = vec![
        base.clone(),
        k(&b, 300, GroupEventKind::MemberJoined { member: id(&b) }),
        k(&a, 301, GroupEventKind::NameChanged { name: "  ".into() }),
        k(
            &a,
            302,
            GroupEventKind::AdminsAdded {
                members: vec![id(&b)],
            },
        ),
        k(&c, 303, GroupEventKind::MemberRemoved { member: id(&b) }),
        k(&a, 304, GroupEventKind::MemberRemoved { member: id(&b) }),
        k(
            &b,
            305,
            GroupEventKind::MembersAdded {
                members: vec![id(&d)],
            },
        ),
        k(&a, 306, GroupEventKind::AdminRemoved { member: id(&a) }),
        k(&a, 307, GroupEventKind::MemberRemoved { member: id(&a) }),
        k(&c, 308, GroupEventKind::MemberRemoved { member: id(&c) }),
        k(&b, 309, GroupEventKind::MemberRemoved { member: id(&d) }),
        // a is neither admin nor member any more.
        k(
            &a,
            310,
            GroupEventKind::NameChanged {
                name: "back".into(),
            },
        ),
        k(&b, 311, GroupEventKind::AdminRemoved { member: id(&b) }),
        k(&b, 312, GroupEventKind::MembersAdded { members: vec![] }),
    ];
    let f = GroupState::fold(&chat, &ups2, l).unwrap();
    let errs: Vec<_> = f.rejected.iter().map(|r| r.error.clone()).collect();
    assert_eq!(
        errs,
        vec![
            GroupError::NotAdmin("member-removed"),
            GroupError::TargetIsAdmin,
            GroupError::NotAdmin("name-changed"),
            GroupError::NotAdmin("members-added"),
        ]
    );
    assert_eq!(f.state.name(), "  ");
    assert_eq!(
        f.state.members().iter().cloned().collect::<Vec<_>>(),
        vec![id(&b)]
    );
    assert!(
        f.state.admins().is_empty(),
        "the last admin dropped its right"
    );
    assert!(f.state.joined().contains(&id(&b)));
    assert_eq!(f.state.last_clock(), 311);
}

/// status-go quirks hush follows so that both compute the same membership.
#[test]
fn status_go_quirks() {
    let (a, b, c, d) = (sk(1), sk(2), sk(3), sk(4));
    let mut rng = rng_from_seed(seed_from_u64(6));
    let chat = new_chat_id(&mut rng, &public_key(&a));
    let l = GroupLimits::default();
    let k = |by: &SecretKey, clock: u64, kind: GroupEventKind| one(&chat, by, clock, kind);
    // chat-created's `member` is the first admin, whoever signs (the chat id names the signer).
    let made = k(
        &a,
        100,
        GroupEventKind::ChatCreated {
            name: "g".into(),
            member: id(&b),
        },
    );
    let f = GroupState::fold(&chat, std::slice::from_ref(&made), l).unwrap();
    assert_eq!(f.state.creator(), Some(id(&a).as_str()));
    assert_eq!(f.state.admins().iter().collect::<Vec<_>>(), vec![&id(&b)]);
    assert!(!f.state.is_member(&id(&a)));
    // An empty `member` (status-react, older hush): the signer is the admin.
    let legacy = k(
        &a,
        100,
        GroupEventKind::ChatCreated {
            name: "g".into(),
            member: String::new(),
        },
    );
    let f = GroupState::fold(&chat, std::slice::from_ref(&legacy), l).unwrap();
    assert!(f.state.is_admin(&id(&a)) && f.state.is_member(&id(&a)));
    // admins-added is valid when ANY target is a member, and makes every target an admin;
    // the non-member admin may then add members.
    let ups = vec![
        created(&chat, &a, "g", &[&b]),
        k(
            &a,
            200,
            GroupEventKind::AdminsAdded {
                members: vec![id(&b), id(&c)],
            },
        ),
        k(
            &c,
            201,
            GroupEventKind::MembersAdded {
                members: vec![id(&d)],
            },
        ),
    ];
    let f = GroupState::fold(&chat, &ups, l).unwrap();
    assert!(f.rejected.is_empty(), "{:?}", f.rejected);
    assert!(f.state.is_admin(&id(&c)) && !f.state.is_member(&id(&c)));
    assert!(f.state.is_member(&id(&d)));
    assert_eq!(f.state.admin_members().into_iter().collect::<Vec<_>>(), {
        let mut v = vec![id(&a), id(&b)];
        v.sort();
        v
    });
    // A group emptied of admins and members can be created again (validateEvent only looks
    // at the two sets); the chat id is checked against the first creator only.
    let ups = vec![
        created(&chat, &a, "g", &[]),
        k(&a, 200, GroupEventKind::AdminRemoved { member: id(&a) }),
        k(&a, 201, GroupEventKind::MemberRemoved { member: id(&a) }),
        k(
            &d,
            202,
            GroupEventKind::ChatCreated {
                name: "again".into(),
                member: id(&d),
            },
        ),
    ];
    let f = GroupState::fold(&chat, &ups, l).unwrap();
    assert!(f.rejected.is_empty(), "{:?}", f.rejected);
    assert_eq!(f.state.name(), "again");
    assert_eq!(f.state.creator(), Some(id(&a).as_str()));
    assert!(f.state.is_admin(&id(&d)));
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
                    GroupEvent { clock, kind: GroupEventKind::ChatCreated { name: name.clone(), member: name.clone() } },
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
        member: id(&a),
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

/// status-go v0.36 `Group` transcribed as plainly as possible from
/// `protocol/v1/membership_update_message.go` (`validateEvent`, `processEvent`).
#[derive(Default)]
pub(crate) struct GoGroup {
    pub(crate) name: String,
    pub(crate) members: BTreeSet<String>,
    pub(crate) admins: BTreeSet<String>,
    /// 4c0d8de `Group.Joined()`: every `member-joined` author, never removed.
    pub(crate) joined: BTreeSet<String>,
}

impl GoGroup {
    fn validate(&self, from: &str, kind: &GroupEventKind) -> bool {
        let (members, admins) = (&self.members, &self.admins);
        match kind {
            GroupEventKind::ChatCreated { .. } => admins.is_empty() && members.is_empty(),
            GroupEventKind::NameChanged { name } => admins.contains(from) && !name.is_empty(),
            GroupEventKind::MembersAdded { .. } => admins.contains(from),
            GroupEventKind::MemberJoined { member } => members.contains(from) && from == member,
            GroupEventKind::MemberRemoved { member } => {
                from == member || (admins.contains(from) && !admins.contains(member))
            }
            // stringSliceSubset(event.Members, g.members.List())
            GroupEventKind::AdminsAdded { members: ms } => {
                admins.contains(from) && members.iter().any(|m| ms.contains(m))
            }
            GroupEventKind::AdminRemoved { member } => admins.contains(from) && from == member,
        }
    }

    fn process(&mut self, kind: &GroupEventKind) {
        match kind {
            GroupEventKind::ChatCreated { name, member } => {
                self.name = name.clone();
                self.members.insert(member.clone());
                self.admins.insert(member.clone());
            }
            GroupEventKind::NameChanged { name } => self.name = name.clone(),
            GroupEventKind::AdminsAdded { members } => self.admins.extend(members.iter().cloned()),
            GroupEventKind::AdminRemoved { member } => {
                self.admins.remove(member);
            }
            GroupEventKind::MembersAdded { members } => {
                self.members.extend(members.iter().cloned())
            }
            GroupEventKind::MemberRemoved { member } => {
                self.members.remove(member);
            }
            GroupEventKind::MemberJoined { member } => {
                self.members.insert(member.clone());
                self.joined.insert(member.clone());
            }
        }
    }
}

/// status-go's `Group.init`: events sorted by clock, every one valid or the group is refused
/// (`None`), and the chat id must end with the first event's author, which must be
/// `chat-created` (`validateChatID`).
pub(crate) fn status_go_group(
    chat: &str,
    mut events: Vec<(u64, String, GroupEventKind)>,
) -> Option<GoGroup> {
    events.sort_by_key(|e| e.0);
    let mut g = GoGroup::default();
    for (_, from, kind) in &events {
        if !g.validate(from, kind) {
            return None;
        }
        g.process(kind);
    }
    let first = events.first()?;
    let creator_ok = matches!(first.2, GroupEventKind::ChatCreated { .. })
        && chat.ends_with(&first.1)
        && chat != first.1;
    creator_ok.then_some(g)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Any sequence of events by any of four keys folds without panicking; whenever status-go
    /// accepts the group (every event valid), hush computes the same name, members and admins;
    /// whenever status-go refuses it, hush reports the events it skipped. Arrival order does
    /// not matter. Candidates invalid at their point are kept only within `invalid_budget`, so
    /// that most runs are long valid histories.
    #[test]
    fn fold_matches_status_go(
        ops in proptest::collection::vec((0usize..4, 0u8..8, 0usize..4, 0usize..4), 0..40),
        invalid_budget in 0usize..3,
    ) {
        let keys: Vec<SecretKey> = (1..=4).map(sk).collect();
        let mut rng = rng_from_seed(seed_from_u64(5));
        let chat = new_chat_id(&mut rng, &public_key(&keys[0]));
        let mut updates = vec![created(&chat, &keys[0], "g", &[])];
        let mut model = vec![(100, id(&keys[0]), updates[0].events[0].kind.clone())];
        let mut live = GoGroup::default();
        live.process(&updates[0].events[0].kind);
        let mut budget = invalid_budget;
        for (i, (author, kind, target, second)) in ops.into_iter().enumerate() {
            let (t, t2) = (id(&keys[target]), id(&keys[second]));
            let kind = match kind {
                0 => GroupEventKind::NameChanged { name: if i % 5 == 0 { String::new() } else { format!("n{i}") } },
                1 => GroupEventKind::MembersAdded { members: vec![t, t2] },
                2 => GroupEventKind::MemberJoined { member: t },
                3 => GroupEventKind::AdminsAdded { members: vec![t, t2] },
                4 => GroupEventKind::MemberRemoved { member: t },
                5 => GroupEventKind::AdminRemoved { member: t },
                6 => GroupEventKind::MembersAdded { members: vec![] },
                _ => GroupEventKind::ChatCreated { name: "again".into(), member: t },
            };
            let from = id(&keys[author]);
            if live.validate(&from, &kind) {
                live.process(&kind);
            } else if budget > 0 {
                budget -= 1;
            } else {
                continue;
            }
            // Distinct clocks: status-go's unstable sort makes ties nondeterministic there.
            let clock = 200 + i as u64;
            model.push((clock, from, kind.clone()));
            updates.push(one(&chat, &keys[author], clock, kind));
        }
        let limits = GroupLimits { max_members: 64 };
        let f = GroupState::fold(&chat, &updates, limits).unwrap();
        let s = &f.state;
        let creator = id(&keys[0]);
        prop_assert_eq!(s.creator(), Some(creator.as_str()));
        prop_assert!(s.joined().is_subset(s.members()));
        match status_go_group(&chat, model) {
            Some(go) => {
                prop_assert!(f.rejected.is_empty(), "{:?}", f.rejected);
                prop_assert_eq!(s.name(), go.name.as_str());
                prop_assert_eq!(s.members(), &go.members);
                prop_assert_eq!(s.admins(), &go.admins);
                prop_assert_eq!(s.join_events(), &go.joined);
            }
            None => prop_assert!(!f.rejected.is_empty()),
        }
        let mut rev = updates.clone();
        rev.reverse();
        prop_assert_eq!(&GroupState::fold(&chat, &rev, limits).unwrap().state, s);
    }
}
