//! Held group messages: released by the change that makes them acceptable, dropped (counted)
//! when their hold ends or newer ones push them out.

use secp256k1::PublicKey;

use super::super::super::direct::tests::Net;
use super::super::super::direct::{Action, ChatEvent, ConversationsConfig, Stats, Via};
use super::super::super::group::{member_id, MembershipUpdateMessage};
use super::super::super::service::CONTENT_TYPE_TEXT;
use super::super::super::transit::{C4Content, C4Message, MessageType};
use crate::Time;

fn group_text(gid: &str, text: &str, now: Time) -> Vec<u8> {
    C4Message {
        text: text.into(),
        content_type: CONTENT_TYPE_TEXT.into(),
        message_type: MessageType::GroupUserMessage,
        clock: now.as_millis() * 100 + text.len() as u64,
        timestamp_ms: now.as_millis(),
        content: C4Content {
            chat_id: gid.into(),
            text: text.into(),
            ..Default::default()
        },
    }
    .encode()
}

/// The `g5` with every update `node` knows of `gid` (what a membership change carries).
fn membership(net: &mut Net, node: usize, gid: &str) -> Vec<u8> {
    MembershipUpdateMessage {
        chat_id: gid.into(),
        updates: net.nodes[node].conv().groups[gid].updates.clone(),
        message: None,
    }
    .encode()
}

/// Feeds `bytes` from `from` to node `to` by hand (out of the in-test network's order) and
/// returns the texts delivered and whether a group update came before the first of them.
fn feed(net: &mut Net, to: usize, from: &PublicKey, bytes: &[u8], now: Time) -> Vec<String> {
    let conv = net.nodes[to].conv();
    conv.handle_incoming(now, from, bytes, Via::Partitioned);
    let mut out = Vec::new();
    let mut updated = false;
    while let Some(a) = conv.poll_action() {
        match a {
            Action::Deliver(ChatEvent::GroupUpdated { .. }) => updated = true,
            Action::Deliver(ChatEvent::Group { message, .. }) => {
                assert!(updated, "a group message came before its group's update");
                out.push(message.text);
            }
            _ => {}
        }
    }
    out
}

fn stats(net: &mut Net, node: usize) -> Stats {
    net.nodes[node].conv().stats().clone()
}

#[test]
fn a_message_that_outruns_its_group_is_delivered_once_the_group_arrives() {
    let mut net = Net::new(31);
    let a = net.add(1, "a1", ConversationsConfig::default());
    let b = net.add(2, "b1", ConversationsConfig::default());
    let (pa, pb) = (net.pk(a), net.pk(b));
    let gid = net.with(a, |x, now| x.create_group(now, "g", &[pb]).unwrap());
    let now = net.now.plus_millis(10);
    let text = group_text(&gid, "early", now);
    assert!(feed(&mut net, b, &pa, &text, now).is_empty());
    // The same message again while it waits is a duplicate, not a second hold.
    assert!(feed(&mut net, b, &pa, &text, now).is_empty());
    let s = stats(&mut net, b);
    assert_eq!((s.group_held, s.duplicates, s.group_unknown), (1, 1, 0));
    assert_eq!(net.nodes[b].conv().held.len(), 1);
    // The hold shows in the timer.
    let expiry = now.plus_millis(ConversationsConfig::default().held_group_message_ttl_ms);
    assert!(net.nodes[b]
        .conv()
        .poll_timeout()
        .is_some_and(|t| t <= expiry));
    let g5 = membership(&mut net, a, &gid);
    assert_eq!(feed(&mut net, b, &pa, &g5, now), ["early"]);
    let s = stats(&mut net, b);
    assert_eq!((s.group_released, s.group_held_dropped), (1, 0));
    assert_eq!(net.nodes[b].conv().held.len(), 0);
    // Delivered once: the envelope again is a duplicate.
    assert!(feed(&mut net, b, &pa, &text, now).is_empty());
    assert_eq!(stats(&mut net, b).duplicates, 2);
}

#[test]
fn a_late_members_message_waits_for_the_update_that_adds_it() {
    let mut net = Net::new(32);
    let a = net.add(1, "a1", ConversationsConfig::default());
    let b = net.add(2, "b1", ConversationsConfig::default());
    let c = net.add(3, "c1", ConversationsConfig::default());
    let (pa, pb, pc) = (net.pk(a), net.pk(b), net.pk(c));
    let gid = net.with(a, |x, now| x.create_group(now, "g", &[pb]).unwrap());
    net.run_for(2_000);
    assert!(net.nodes[b].conv().group(&gid).is_some());
    // a adds c; c's first message reaches b before a's update does.
    net.nodes[a]
        .conv()
        .add_member(net.now, &gid, &pc)
        .expect("admin adds");
    while net.nodes[a].conv().poll_action().is_some() {}
    let now = net.now.plus_millis(10);
    let from_c = group_text(&gid, "hello from c", now);
    assert!(feed(&mut net, b, &pc, &from_c, now).is_empty());
    assert_eq!(stats(&mut net, b).group_held, 1);
    assert!(!net.nodes[b]
        .conv()
        .group(&gid)
        .unwrap()
        .is_member(&member_id(&pc)));
    let g5 = membership(&mut net, a, &gid);
    assert_eq!(feed(&mut net, b, &pa, &g5, now), ["hello from c"]);
    assert_eq!(stats(&mut net, b).group_released, 1);
}

#[test]
fn a_hold_ends_with_a_counted_drop_and_the_oldest_goes_first_when_full() {
    let mut net = Net::new(33);
    let config = ConversationsConfig {
        max_held_group_messages: 2,
        ..ConversationsConfig::default()
    };
    let ttl = config.held_group_message_ttl_ms;
    let a = net.add(1, "a1", ConversationsConfig::default());
    let b = net.add(2, "b1", config);
    let (pa, pb) = (net.pk(a), net.pk(b));
    let gid = net.with(a, |x, now| x.create_group(now, "g", &[pb]).unwrap());
    let t1 = net.now.plus_millis(10);
    for (i, text) in ["one", "two", "three"].into_iter().enumerate() {
        let at = t1.plus_millis(i as u64);
        assert!(feed(&mut net, b, &pa, &group_text(&gid, text, at), at).is_empty());
    }
    let s = stats(&mut net, b);
    assert_eq!((s.group_held, s.group_held_dropped), (3, 1));
    // "one" was pushed out; "two" ends its hold first, exactly when its TTL is over.
    let two_ends = t1.plus_millis(1 + ttl);
    assert_eq!(net.nodes[b].conv().held.next_expiry(), Some(two_ends));
    assert!(net.nodes[b].conv().poll_timeout() <= Some(two_ends));
    net.nodes[b]
        .conv()
        .handle_timeout(Time::from_millis(two_ends.as_millis() - 1));
    assert_eq!(stats(&mut net, b).group_held_dropped, 1);
    net.nodes[b].conv().handle_timeout(two_ends);
    assert_eq!(stats(&mut net, b).group_held_dropped, 2);
    assert_eq!(net.nodes[b].conv().held.len(), 1);
    // The group arrives: only "three" is still there to deliver.
    let g5 = membership(&mut net, a, &gid);
    assert_eq!(feed(&mut net, b, &pa, &g5, two_ends), ["three"]);
    let s = stats(&mut net, b);
    assert_eq!((s.group_released, s.group_held_dropped), (1, 2));
}

#[test]
fn nothing_is_held_for_a_group_we_are_not_in_or_when_holding_is_off() {
    let mut net = Net::new(34);
    let off = ConversationsConfig {
        max_held_group_messages: 0,
        ..ConversationsConfig::default()
    };
    let a = net.add(1, "a1", ConversationsConfig::default());
    let b = net.add(2, "b1", off);
    let c = net.add(3, "c1", ConversationsConfig::default());
    let (pa, pb, pc) = (net.pk(a), net.pk(b), net.pk(c));
    // Holding off: dropped and counted at once.
    let gid = net.with(a, |x, now| x.create_group(now, "g", &[pb]).unwrap());
    let now = net.now.plus_millis(10);
    assert!(feed(&mut net, b, &pa, &group_text(&gid, "x", now), now).is_empty());
    let s = stats(&mut net, b);
    assert_eq!((s.group_held, s.group_held_dropped), (0, 1));
    // c left: a message for a group whose members no longer include us is not held.
    let gid2 = net.with(a, |x, now| x.create_group(now, "h", &[pc]).unwrap());
    net.run_for(2_000);
    net.with(c, |x, now| x.leave_group(now, &gid2).unwrap());
    net.run_for(2_000);
    assert!(!net.nodes[c]
        .conv()
        .group(&gid2)
        .unwrap()
        .is_member(&member_id(&pc)));
    let before = stats(&mut net, c);
    let at = net.now;
    assert!(feed(
        &mut net,
        c,
        &pa,
        &group_text(&gid2, "after you left", at),
        at
    )
    .is_empty());
    let after = stats(&mut net, c);
    assert_eq!(after.group_not_member, before.group_not_member + 1);
    assert_eq!(after.group_held, before.group_held);
}
