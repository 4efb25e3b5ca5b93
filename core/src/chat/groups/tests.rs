//! Group tests over the in-test network of `direct::tests`.

use std::collections::BTreeSet;

use super::*;
use crate::chat::direct::tests::{assert_exactly_once_in_order, key, Net, T0};
use crate::chat::direct::{ConversationsConfig, StoredMessage, Via};
use crate::ecies::public_key;

fn updated(node: &crate::chat::direct::tests::Node, group: &str) -> Option<(Vec<String>, String)> {
    node.events.iter().rev().find_map(|e| match e {
        ChatEvent::GroupUpdated {
            group_id,
            members,
            name,
            ..
        } if group_id == group => Some((members.clone(), name.clone())),
        _ => None,
    })
}

#[test]
fn group_of_three_then_late_member() {
    let mut net = Net::new(21);
    net.dup = 0.3;
    net.max_delay_ms = 1_500;
    let a = net.add(1, "a1", ConversationsConfig::default());
    let b = net.add(2, "b1", ConversationsConfig::default());
    let c = net.add(3, "c1", ConversationsConfig::default());
    let d = net.add(4, "d1", ConversationsConfig::default());
    let e = net.add(5, "e1", ConversationsConfig::default());
    let (pb, pc, pd) = (net.pk(b), net.pk(c), net.pk(d));
    let gid = net.with(a, |x, now| {
        x.create_group(now, "friends", &[pb, pc]).unwrap()
    });
    assert!(gid.ends_with(&member_id(&net.pk(a))));
    net.run_for(5_000);
    for n in [a, b, c] {
        let (members, name) = updated(&net.nodes[n], &gid).expect("group known");
        assert_eq!(members.len(), 3);
        assert_eq!(name, "friends");
    }
    let mut before = Vec::new();
    for (n, text) in [(a, "g1"), (b, "g2"), (c, "g3")] {
        before.push(net.with(n, |x, now| x.send_group(now, &gid, text).unwrap()));
        net.run_for(5_000);
    }
    // Late joiner.
    net.with(a, |x, now| x.add_member(now, &gid, &pd).unwrap());
    net.run_for(5_000);
    let (members, _) = updated(&net.nodes[d], &gid).expect("d learned the group");
    let expected: BTreeSet<String> = [a, b, c, d]
        .iter()
        .map(|i| member_id(&net.pk(*i)))
        .collect();
    assert_eq!(members.into_iter().collect::<BTreeSet<_>>(), expected);
    for n in [b, c] {
        assert_eq!(updated(&net.nodes[n], &gid).unwrap().0.len(), 4);
    }
    let mut after = Vec::new();
    for (n, text) in [(b, "g4"), (d, "g5"), (a, "g6")] {
        after.push(net.with(n, |x, now| x.send_group(now, &gid, text).unwrap()));
        net.run_for(5_000);
    }
    let all: Vec<MessageId> = before.iter().chain(&after).copied().collect();
    let others = |own: &MessageId, list: &[MessageId]| -> Vec<MessageId> {
        list.iter().filter(|m| *m != own).copied().collect()
    };
    // Each member gets every message but its own, once, in clock order.
    assert_exactly_once_in_order(&net.nodes[a], &others(&before[0], &others(&after[2], &all)));
    assert_exactly_once_in_order(&net.nodes[b], &others(&before[1], &others(&after[0], &all)));
    assert_exactly_once_in_order(&net.nodes[c], &others(&before[2], &all));
    // The late joiner: only what was sent after it joined.
    assert_exactly_once_in_order(&net.nodes[d], &others(&after[1], &after));
    // No one else.
    assert!(net.nodes[e].events.is_empty());
    for m in net.nodes[c].messages() {
        assert_eq!(m.chat, gid);
    }
}

#[test]
fn non_members_and_non_admins_are_refused() {
    let mut net = Net::new(22);
    let a = net.add(1, "a1", ConversationsConfig::default());
    let b = net.add(2, "b1", ConversationsConfig::default());
    let e = net.add(5, "e1", ConversationsConfig::default());
    let (pb, pe) = (net.pk(b), net.pk(e));
    let gid = net.with(a, |x, now| x.create_group(now, "g", &[pb]).unwrap());
    net.run_for(1_000);
    // A non-admin cannot add.
    let err = net.with(b, |x, now| x.add_member(now, &gid, &pe).unwrap_err());
    assert!(
        matches!(err, ConversationError::Group(GroupError::NotAdmin(_))),
        "{err:?}"
    );
    // A non-member cannot send (it does not know the group).
    let err = net.with(e, |x, now| x.send_group(now, &gid, "hi").unwrap_err());
    assert_eq!(err, ConversationError::UnknownGroup(gid.clone()));
    // A forged g5 from a non-member carrying the genuine updates is dropped by members.
    let updates = net.nodes[a]
        .conv()
        .groups
        .get(&gid)
        .unwrap()
        .updates
        .clone();
    let now = net.now;
    let c4 = C4Message {
        text: "spam".into(),
        content_type: CONTENT_TYPE_TEXT.into(),
        message_type: MessageType::GroupUserMessage,
        clock: now.as_millis() * 100 + 5,
        timestamp_ms: now.as_millis(),
        content: C4Content {
            chat_id: gid.clone(),
            text: "spam".into(),
            ..Default::default()
        },
    };
    // Plus an update signed by e adding itself: the fold rejects it (not admin).
    let mut forged = updates.clone();
    forged.push(MembershipUpdate::sign(
        &gid,
        vec![GroupEvent {
            clock: now.as_millis() * 100 + 4,
            kind: GroupEventKind::MembersAdded {
                members: vec![member_id(&pe)],
            },
        }],
        &key(5),
    ));
    let g5 = MembershipUpdateMessage {
        chat_id: gid.clone(),
        updates: forged,
        message: Some(c4.clone()),
    };
    let before = net.nodes[b].conv().stats().clone();
    net.nodes[b]
        .conv()
        .handle_incoming(now, &pe, &g5.encode(), Via::Partitioned);
    while let Some(act) = net.nodes[b].conv().poll_action() {
        assert!(
            !matches!(act, Action::Deliver(ChatEvent::Group { .. })),
            "{act:?}"
        );
    }
    // Both are counted by reason: e's event refused, its message held (an update adding e
    // might still come; `held` tests how that ends).
    let after = net.nodes[b].conv().stats().clone();
    assert_eq!(
        after.group_events_rejected,
        before.group_events_rejected + 1
    );
    assert_eq!(after.group_held, before.group_held + 1);
    assert!(!net.nodes[b]
        .conv()
        .group(&gid)
        .unwrap()
        .is_member(&member_id(&pe)));
    // A bare c4 group-user-message from a non-member is dropped too.
    net.nodes[b]
        .conv()
        .handle_incoming(now, &pe, &c4.encode(), Via::Partitioned);
    while let Some(act) = net.nodes[b].conv().poll_action() {
        assert!(!matches!(act, Action::Deliver(_)), "{act:?}");
    }
    // A g5 for a group we are not in is not stored.
    let other = net.with(a, |x, now| x.create_group(now, "without b", &[pe]).unwrap());
    net.run_for(1_000);
    assert!(net.nodes[b].conv().group(&other).is_none());
    assert!(net.nodes[e].conv().group(&other).is_some());
}

#[test]
fn removed_member_gets_no_more_messages() {
    let mut net = Net::new(23);
    let a = net.add(1, "a1", ConversationsConfig::default());
    let b = net.add(2, "b1", ConversationsConfig::default());
    let c = net.add(3, "c1", ConversationsConfig::default());
    let (pb, pc) = (net.pk(b), net.pk(c));
    let gid = net.with(a, |x, now| x.create_group(now, "g", &[pb, pc]).unwrap());
    net.run_for(1_000);
    net.with(a, |x, now| x.remove_member(now, &gid, &pc).unwrap());
    net.run_for(1_000);
    // c learned of its removal.
    assert!(!net.nodes[c]
        .conv()
        .group(&gid)
        .unwrap()
        .is_member(&member_id(&pc)));
    let m = net.with(b, |x, now| x.send_group(now, &gid, "after").unwrap());
    net.run_for(1_000);
    assert_exactly_once_in_order(&net.nodes[a], &[m]);
    assert!(net.nodes[c].messages().is_empty());
    // c can no longer send.
    let err = net.with(c, |x, now| x.send_group(now, &gid, "x").unwrap_err());
    assert_eq!(err, ConversationError::NotMember(gid.clone()));
    // Rename by the admin reaches the remaining member.
    net.with(a, |x, now| x.rename_group(now, &gid, "renamed").unwrap());
    net.run_for(1_000);
    assert_eq!(updated(&net.nodes[b], &gid).unwrap().1, "renamed");
}

#[test]
fn group_survives_restarts() {
    for seed in 0..4u64 {
        let mut net = Net::new(300 + seed);
        net.max_delay_ms = 300;
        net.dup = 0.2;
        let a = net.add(1, "a1", ConversationsConfig::default());
        let b = net.add(2, "b1", ConversationsConfig::default());
        let c = net.add(3, "c1", ConversationsConfig::default());
        let (pb, pc) = (net.pk(b), net.pk(c));
        let gid = net.with(a, |x, now| x.create_group(now, "g", &[pb, pc]).unwrap());
        net.run_for(1_000);
        net.kill_prob = 0.05;
        net.kills_left = 10;
        for round in 0..4 {
            for n in [a, b, c] {
                // A crash may have lost the group before it was committed: only members send.
                if net.nodes[n].conv().group(&gid).is_some() {
                    net.with(n, |x, now| {
                        x.send_group(now, &gid, &format!("{n}.{round}")).unwrap()
                    });
                }
                net.run_for(800);
            }
        }
        net.run_for(3_000);
        let restarts: u64 = net.nodes.iter().map(|n| n.restarts).sum();
        assert!(restarts > 0, "seed {seed}: no crash");
        let history = |n: usize| -> Vec<StoredMessage> { net.nodes[n].history() };
        for r in [a, b, c] {
            let mut sent: Vec<(u64, MessageId)> = Vec::new();
            for s in [a, b, c] {
                if s == r {
                    continue;
                }
                let own = net.pk(s).serialize_uncompressed();
                sent.extend(
                    history(s)
                        .iter()
                        .filter(|m| m.group && m.message.from == own)
                        .map(|m| (m.message.clock, m.message.message_id)),
                );
            }
            sent.sort();
            let mut got: Vec<(u64, MessageId)> = history(r)
                .iter()
                .filter(|m| m.group && m.message.from != net.pk(r).serialize_uncompressed())
                .map(|m| (m.message.clock, m.message.message_id))
                .collect();
            got.sort();
            assert_eq!(got, sent, "seed {seed}: node {r}");
        }
    }
}

#[test]
fn group_commands_validate_input() {
    let mut c =
        Conversations::new(ConversationsConfig::default(), key(1), "a1", [1; 32], T0).unwrap();
    assert!(matches!(
        c.create_group(T0, " ", &[]),
        Err(ConversationError::InvalidName(_))
    ));
    assert!(matches!(
        c.send_group(T0, "nope", "x"),
        Err(ConversationError::UnknownGroup(_))
    ));
    let solo = c.create_group(T0, "solo", &[]).unwrap();
    assert!(c.group(&solo).unwrap().is_admin(c.own_id()));
    let pb = public_key(&key(2));
    c.add_member(T0, &solo, &pb).unwrap();
    assert!(c.group(&solo).unwrap().is_member(&member_id(&pb)));
}

#[test]
fn leaving_and_admin_rules() {
    let mut net = Net::new(24);
    let a = net.add(1, "a1", ConversationsConfig::default());
    let b = net.add(2, "b1", ConversationsConfig::default());
    let c = net.add(3, "c1", ConversationsConfig::default());
    let (pb, pc) = (net.pk(b), net.pk(c));
    let gid = net.with(a, |x, now| x.create_group(now, "g", &[pb, pc]).unwrap());
    net.run_for(1_000);
    // The only admin cannot leave (last admin).
    let err = net.with(a, |x, now| x.leave_group(now, &gid).unwrap_err());
    assert!(
        matches!(err, ConversationError::Group(GroupError::LastAdmin)),
        "{err:?}"
    );
    net.with(a, |x, now| x.add_admins(now, &gid, &[pb]).unwrap());
    net.run_for(1_000);
    assert!(net.nodes[c]
        .conv()
        .group(&gid)
        .unwrap()
        .is_admin(&member_id(&pb)));
    net.with(a, |x, now| x.leave_group(now, &gid).unwrap());
    net.run_for(1_000);
    net.with(c, |x, now| x.leave_group(now, &gid).unwrap());
    net.run_for(1_000);
    let g = net.nodes[b].conv().group(&gid).unwrap().clone();
    assert_eq!(g.members().len(), 1);
    assert!(g.is_admin(&member_id(&pb)));
}

#[test]
fn group_with_datasync_under_loss() {
    let mut net = Net::new(25);
    net.loss = 0.4;
    net.max_delay_ms = 500;
    let mut cfg = ConversationsConfig {
        datasync: true,
        ..Default::default()
    };
    cfg.mvds.retransmission = crate::mvds::Retransmission::Exponential {
        base_epochs: 2,
        cap_epochs: 16,
    };
    let a = net.add(1, "a1", cfg.clone());
    let b = net.add(2, "b1", cfg.clone());
    let c = net.add(3, "c1", cfg);
    let (pb, pc) = (net.pk(b), net.pk(c));
    let gid = net.with(a, |x, now| x.create_group(now, "g", &[pb, pc]).unwrap());
    net.run_for(60_000);
    let mut sent = Vec::new();
    for k in 0..5 {
        sent.push(net.with(a, |x, now| {
            x.send_group(now, &gid, &format!("m{k}")).unwrap()
        }));
        net.run_for(300);
    }
    net.run_for(120_000);
    assert_exactly_once_in_order(&net.nodes[b], &sent);
    assert_exactly_once_in_order(&net.nodes[c], &sent);
}

/// A group hush creates, changes and propagates is one status-go v0.36 accepts as a whole
/// (every event valid under its rules, the admin read from chat-created's `member`), with the
/// membership hush computes.
#[test]
fn hush_groups_are_valid_for_status_go() {
    use crate::chat::group::tests::status_go_group;
    let mut net = Net::new(24);
    let a = net.add(1, "a1", ConversationsConfig::default());
    let b = net.add(2, "b1", ConversationsConfig::default());
    let c = net.add(3, "c1", ConversationsConfig::default());
    let (pb, pc) = (net.pk(b), net.pk(c));
    let gid = net.with(a, |x, now| x.create_group(now, "g", &[pb]).unwrap());
    net.run_for(1_000);
    net.with(b, |x, now| x.send_group(now, &gid, "hi").unwrap());
    net.with(a, |x, now| x.add_member(now, &gid, &pc).unwrap());
    net.run_for(1_000);
    net.with(a, |x, now| x.add_admins(now, &gid, &[pb]).unwrap());
    net.run_for(1_000);
    net.with(b, |x, now| x.rename_group(now, &gid, "renamed").unwrap());
    net.run_for(1_000);
    net.with(b, |x, now| x.join_group(now, &gid).unwrap());
    net.run_for(1_000);
    // Joining twice sends nothing more.
    let updates_before = net.nodes[b].conv().groups.get(&gid).unwrap().updates.len();
    net.with(b, |x, now| x.join_group(now, &gid).unwrap());
    assert_eq!(
        net.nodes[b].conv().groups.get(&gid).unwrap().updates.len(),
        updates_before
    );
    net.with(c, |x, now| x.leave_group(now, &gid).unwrap());
    net.run_for(1_000);
    for n in [a, b] {
        let chat = net.nodes[n].conv().groups.get(&gid).unwrap().clone();
        let first = &chat.updates[0].events[0];
        assert_eq!(
            first.kind,
            GroupEventKind::ChatCreated {
                name: "g".into(),
                member: member_id(&net.pk(a)),
            }
        );
        let events: Vec<_> = chat
            .updates
            .iter()
            .flat_map(|u| {
                let from = member_id(&u.recover_author().unwrap());
                u.events
                    .iter()
                    .map(move |e| (e.clock, from.clone(), e.kind.clone()))
            })
            .collect();
        let go = status_go_group(&gid, events).expect("status-go accepts the group");
        assert_eq!(go.name, "renamed");
        assert_eq!(&go.members, chat.state.members());
        assert_eq!(&go.admins, chat.state.admins());
        assert!(!go.members.contains(&member_id(&pc)));
        // status-go 4c0d8de delivers group messages only between members with a
        // `member-joined` event: the creator joined at creation, b by `join_group`.
        let both: BTreeSet<String> = [member_id(&net.pk(a)), member_id(&pb)].into();
        assert_eq!(go.joined, both);
        assert_eq!(chat.state.join_events(), &both);
    }
}
