//! End to end with three real `hush node` processes: 1:1 both ways, a group of three with a
//! member added later, and one node killed with SIGKILL mid-conversation and restarted on its
//! data directory. Every message must arrive exactly once, in clock order, at every intended
//! recipient, and at no one else (issue 8's "done when").
//!
//! Topology: B and C dial A, so every B↔C message is relayed by A, which must not print it.
//! Identities are sealed (passphrase file, light scrypt); 1:1 and group messages go through
//! MVDS (`--datasync`). What each node prints on stdout is collected from its whole
//! transcript (both incarnations of C), so a message delivered before the kill and again after
//! the restart would be caught.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use hush_drivers::driver::GROUP_UPDATED_PREFIX;
use hush_tests::{key_of, unique_temp_dir, NodeProcess};

/// Bound on the whole test: generous, the machine may be busy.
const TIMEOUT_SECS: u64 = 180;

/// Waits for a received message (not a command reply) with this text; returns its JSON.
fn wait_message(node: &NodeProcess, deadline: Instant, text: &str) -> serde_json::Value {
    let line = node.wait_stdout(deadline, |l| {
        serde_json::from_str::<serde_json::Value>(l)
            .is_ok_and(|v| v["text"] == text && v.get("reply").is_none())
    });
    serde_json::from_str(&line).unwrap()
}

/// Waits until messages with all these texts arrived, in any order (`wait_stdout` skips
/// what does not match, so waiting for them one by one could skip one of them).
fn wait_messages(node: &NodeProcess, deadline: Instant, texts: &[&str]) {
    let mut missing: Vec<&str> = texts.to_vec();
    while !missing.is_empty() {
        let line = node.wait_stdout(deadline, |l| {
            serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| {
                v.get("reply").is_none() && v["text"].as_str().is_some_and(|t| missing.contains(&t))
            })
        });
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        missing.retain(|t| v["text"] != *t);
    }
}

/// Waits for the `group updated` stderr line of the group named `name` whose member list
/// contains `member`; returns the group id.
fn wait_group(node: &NodeProcess, deadline: Instant, name: &str, member: &str) -> String {
    let line = node.wait_stderr(deadline, |l| {
        l.starts_with(GROUP_UPDATED_PREFIX)
            && l.contains(&format!("name={name:?}"))
            && l.contains(member)
    });
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("id="))
        .unwrap_or_else(|| panic!("no id in {line:?}"))
        .to_string()
}

/// A printed message: (kind, chat, from, text, clock).
type Printed = (String, String, String, String, u64);

/// Every received message a node printed on stdout, from a transcript, in print order, each
/// `message_id` once: a line printed just before a SIGKILL is printed again after the restart
/// (at-least-once delivery, issue 16 item 3) and a consumer dedupes by id.
fn received(transcript: &str, name: &str) -> Vec<Printed> {
    let tag = format!("[{name} out] ");
    let mut ids = std::collections::BTreeSet::new();
    transcript
        .lines()
        .filter_map(|l| l.strip_prefix(&tag))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("reply").is_none() && v.get("kind").is_some())
        .filter(|v| ids.insert(v["message_id"].as_str().unwrap().to_string()))
        .map(|v| {
            (
                v["kind"].as_str().unwrap().to_string(),
                v["chat"].as_str().unwrap().to_string(),
                v["from"].as_str().unwrap().to_string(),
                v["text"].as_str().unwrap().to_string(),
                v["clock"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn args<'a>(pass: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "--listen",
        "127.0.0.1:0",
        "--json",
        "--datasync",
        "--light-kdf",
        "--passphrase-file",
        pass,
    ];
    v.extend_from_slice(extra);
    v
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn three_nodes_converse_through_a_sigkill() {
    let deadline = Instant::now() + Duration::from_secs(TIMEOUT_SECS);
    let secrets = unique_temp_dir("conv-pass");
    std::fs::create_dir_all(&secrets).unwrap();
    let pass = secrets.join("pass");
    std::fs::write(&pass, "three nodes\n").unwrap();

    let mut a = NodeProcess::spawn("A", &args(s(&pass), &[]));
    let enode_a = a.enode(deadline);
    let peer_a = enode_a.to_string();
    let mut b = NodeProcess::spawn("B", &args(s(&pass), &["--peer", &peer_a]));
    let enode_b = b.enode(deadline);
    let mut c = NodeProcess::spawn("C", &args(s(&pass), &["--peer", &peer_a]));
    let enode_c = c.enode(deadline);
    a.wait_connected(deadline, &enode_b);
    a.wait_connected(deadline, &enode_c);
    let (ka, kb, kc) = (key_of(&enode_a), key_of(&enode_b), key_of(&enode_c));

    // /whoami agrees with the enode, and the identity is sealed (no plaintext key file).
    a.send_line("/whoami");
    let who: serde_json::Value =
        serde_json::from_str(&a.wait_stdout(deadline, |l| l.contains("\"whoami\""))).unwrap();
    assert_eq!(who["public_key"], ka.as_str());
    assert!(!a.data_dir.join("nodekey").exists());

    // 1:1 both ways.
    a.send_line(&format!("/dm {kb} a to b"));
    let m = wait_message(&b, deadline, "a to b");
    assert_eq!(
        (m["kind"].as_str(), m["from"].as_str()),
        (Some("dm"), Some(ka.as_str()))
    );
    b.send_line(&format!("/dm {ka} b to a"));
    wait_message(&a, deadline, "b to a");
    // B to C crosses A, which must not print it.
    b.send_line(&format!("/dm {kc} b to c"));
    wait_message(&c, deadline, "b to c");

    // A group of A and B; C is added later and sees only what follows.
    a.send_line(&format!("/group create trio {kb}"));
    let gid = wait_group(&a, deadline, "trio", &kb);
    assert_eq!(wait_group(&b, deadline, "trio", &ka), gid);
    a.send_line("/group send trio g1");
    wait_message(&b, deadline, "g1");
    b.send_line("/group send trio g2");
    wait_message(&a, deadline, "g2");
    a.send_line(&format!("/group add trio {kc}"));
    assert_eq!(wait_group(&c, deadline, "trio", &kc), gid);
    wait_group(&b, deadline, "trio", &kc);
    a.send_line("/group send trio g3");
    wait_message(&b, deadline, "g3");
    wait_message(&c, deadline, "g3");
    c.send_line("/group send trio g4");
    wait_message(&a, deadline, "g4");
    wait_message(&b, deadline, "g4");
    a.send_line(&format!("/dm {kc} a to c before the kill"));
    wait_message(&c, deadline, "a to c before the kill");

    // SIGKILL C mid-conversation; messages to it keep coming while it is down.
    let c1_transcript = c.transcript();
    let c_dir = c.stop_keep_data();
    a.send_line(&format!("/dm {kc} a to c while down"));
    b.send_line("/group send trio g5");
    wait_message(&a, deadline, "g5");

    let mut c2 = NodeProcess::spawn_in("C", c_dir, &args(s(&pass), &["--peer", &peer_a]));
    let enode_c2 = c2.enode(deadline);
    assert_eq!(
        enode_c2.public_key, enode_c.public_key,
        "same identity after restart"
    );
    // Both were sent while C was down; they may arrive in either order.
    wait_messages(&c2, deadline, &["a to c while down", "g5"]);
    // The restarted node's sessions still work both ways.
    c2.send_line(&format!("/dm {ka} c to a after restart"));
    wait_message(&a, deadline, "c to a after restart");
    c2.send_line("/group send trio g6");
    wait_message(&a, deadline, "g6");
    wait_message(&b, deadline, "g6");
    // Its history survived the kill, in clock order.
    c2.send_line("/history trio");
    let mut history = Vec::new();
    for _ in 0..4 {
        let line = c2.wait_stdout(deadline, |l| l.contains("\"reply\":\"history\""));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        history.push((
            v["text"].as_str().unwrap().to_string(),
            v["clock"].as_u64().unwrap(),
        ));
    }
    assert_eq!(
        history.iter().map(|h| h.0.as_str()).collect::<Vec<_>>(),
        vec!["g3", "g4", "g5", "g6"],
        "C's group history"
    );
    c2.send_line("/chats");
    c2.wait_stdout(deadline, |l| {
        l.contains("\"reply\":\"chat\"") && l.contains(&gid)
    });

    // Let any late duplicate show itself before counting.
    std::thread::sleep(Duration::from_secs(3));
    let c_all = format!("{c1_transcript}\n{}", c2.transcript());
    let got: BTreeMap<&str, Vec<Printed>> = [
        ("A", received(&a.transcript(), "A")),
        ("B", received(&b.transcript(), "B")),
        ("C", received(&c_all, "C")),
    ]
    .into_iter()
    .collect();
    let dm = |from: &str, text: &str| ("dm".to_string(), from.to_string(), text.to_string());
    let gm = |from: &str, text: &str| ("group".to_string(), from.to_string(), text.to_string());
    let want: BTreeMap<&str, Vec<(String, String, String)>> = [
        (
            "A",
            vec![
                dm(&kb, "b to a"),
                gm(&kb, "g2"),
                gm(&kc, "g4"),
                gm(&kb, "g5"),
                dm(&kc, "c to a after restart"),
                gm(&kc, "g6"),
            ],
        ),
        (
            "B",
            vec![
                dm(&ka, "a to b"),
                gm(&ka, "g1"),
                gm(&ka, "g3"),
                gm(&kc, "g4"),
                gm(&kc, "g6"),
            ],
        ),
        (
            "C",
            vec![
                dm(&kb, "b to c"),
                gm(&ka, "g3"),
                dm(&ka, "a to c before the kill"),
                dm(&ka, "a to c while down"),
                gm(&kb, "g5"),
            ],
        ),
    ]
    .into_iter()
    .collect();
    for (node, msgs) in &got {
        let mut seen: Vec<(String, String, String)> = msgs
            .iter()
            .map(|(k, _, from, text, _)| (k.clone(), from.clone(), text.clone()))
            .collect();
        let mut expected = want[node].clone();
        seen.sort();
        expected.sort();
        assert_eq!(seen, expected, "{node} received exactly these, once each");
        // Chat ids: a 1:1 chat is the other party's key; group messages carry the group id.
        for (kind, chat, from, _, _) in msgs {
            match kind.as_str() {
                "dm" => assert_eq!(chat, from),
                _ => assert_eq!(chat, &gid),
            }
        }
        // Clock order within each chat: what arrives later has a larger Lamport clock.
        let mut last: BTreeMap<&str, u64> = BTreeMap::new();
        for (_, chat, _, text, clock) in msgs {
            let prev = last.insert(chat.as_str(), *clock).unwrap_or(0);
            assert!(
                *clock > prev,
                "{node}: {text:?} (clock {clock}) after clock {prev} in {chat}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&secrets);
}

/// Polls `/devices` until the other device is listed; returns its installation id.
fn wait_device(node: &mut NodeProcess, deadline: Instant) -> String {
    loop {
        node.send_line("/devices");
        node.send_line("/whoami");
        // Each round ends with the whoami reply; a device line before it is the answer.
        let mut found = None;
        loop {
            let line = node.wait_stdout(deadline, |l| l.contains("\"reply\""));
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            match v["reply"].as_str() {
                Some("device") => found = v["installation_id"].as_str().map(str::to_string),
                Some("whoami") => break,
                _ => {}
            }
        }
        if let Some(id) = found {
            return id;
        }
        assert!(Instant::now() < deadline, "no other device listed");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn two_devices_of_one_identity_pair_and_sync() {
    let deadline = Instant::now() + Duration::from_secs(TIMEOUT_SECS);
    let root = unique_temp_dir("conv-devices");
    std::fs::create_dir_all(&root).unwrap();
    let pass = root.join("pass");
    std::fs::write(&pass, "devices\n").unwrap();
    let (d1_dir, d2_dir, key_file) = (root.join("d1"), root.join("d2"), root.join("id.json"));
    // One identity on two devices: created on the first, exported, imported on the second.
    let key = |args: &[&str]| {
        let out = std::process::Command::new(hush_tests::hush_bin())
            .arg("key")
            .args(args)
            .env_remove("HUSH_PASSPHRASE")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    key(&[
        "new",
        "--data-dir",
        s(&d1_dir),
        "--light-kdf",
        "--passphrase-file",
        s(&pass),
    ]);
    key(&[
        "export",
        "--data-dir",
        s(&d1_dir),
        "--out",
        s(&key_file),
        "--light-kdf",
        "--passphrase-file",
        s(&pass),
    ]);
    key(&[
        "import",
        "--data-dir",
        s(&d2_dir),
        s(&key_file),
        "--passphrase-file",
        s(&pass),
    ]);

    let b = NodeProcess::spawn("B", &args(s(&pass), &[]));
    let enode_b = b.enode(deadline);
    let peer_b = enode_b.to_string();
    let dev = |name: &str, dir: &Path| {
        NodeProcess::spawn_in(
            name,
            dir.to_path_buf(),
            &args(s(&pass), &["--device-key", "--peer", &peer_b]),
        )
    };
    let mut d1 = dev("D1", &d1_dir);
    let enode_d1 = d1.enode(deadline);
    let mut d2 = dev("D2", &d2_dir);
    let enode_d2 = d2.enode(deadline);
    assert_ne!(
        enode_d1.public_key, enode_d2.public_key,
        "each device has its own node key"
    );
    d1.send_line("/whoami");
    let who: serde_json::Value =
        serde_json::from_str(&d1.wait_stdout(deadline, |l| l.contains("\"whoami\""))).unwrap();
    let identity = who["public_key"].as_str().unwrap().to_string();
    let installation_d1 = who["installation_id"].as_str().unwrap().to_string();
    assert_ne!(
        identity,
        key_of(&enode_d1),
        "chat identity is not the device node key"
    );

    // The devices learn each other from their contact codes and are paired by the user.
    let id2 = wait_device(&mut d1, deadline);
    assert_eq!(wait_device(&mut d2, deadline), installation_d1);
    d1.send_line(&format!("/pair {id2}"));
    d2.send_line(&format!("/pair {installation_d1}"));
    // Make sure the pairing commands were taken before sending.
    d1.send_line("/whoami");
    d1.wait_stdout(deadline, |l| l.contains("\"whoami\""));
    d2.send_line("/whoami");
    d2.wait_stdout(deadline, |l| l.contains("\"whoami\""));

    let kb = key_of(&enode_b);
    d1.send_line(&format!("/dm {kb} sent from d1"));
    let at_b = wait_message(&b, deadline, "sent from d1");
    assert_eq!(at_b["from"], identity.as_str());
    // The other device has its own device's message, in the chat with B.
    let synced = wait_message(&d2, deadline, "sent from d1");
    assert_eq!(
        (synced["chat"].as_str(), synced["kind"].as_str()),
        (Some(kb.as_str()), Some("dm"))
    );
    // B's reply reaches both devices.
    let mut b = b;
    b.send_line(&format!("/dm {identity} reply to both"));
    wait_message(&d1, deadline, "reply to both");
    wait_message(&d2, deadline, "reply to both");
    drop((d1, d2, b));
    let _ = std::fs::remove_dir_all(&root);
}
