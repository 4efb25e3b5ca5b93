//! Issue 16 item 9: with a passphrase the whole store is encrypted at rest (SQLCipher). Real
//! `hush node` processes converse; then no file of their data directories holds a message
//! text or the identity key, a wrong or missing passphrase is a clean one-line error, and a
//! plaintext store with history is encrypted in place through kills at each step of the
//! migration without losing a message (`/history`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hush_drivers::driver::INJECTED_CRASH_EXIT_CODE;
use hush_drivers::sqlcipher::{encrypting_path, file_state, FileState, INJECT_CRASH_ENV};
use hush_drivers::store::STORE_FILE;
use hush_tests::{key_of, unique_temp_dir, NodeProcess};

/// Bound on each test: generous, the machine may be busy.
const TIMEOUT_SECS: u64 = 120;
const CHAT: &str = "enc";
/// A's identity, given as a plaintext `nodekey` and sealed at the first start.
const KNOWN_KEY_HEX: &str = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";

fn args<'a>(pass: Option<&'a str>, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["--listen", "127.0.0.1:0", "--json", "--datasync"];
    if let Some(p) = pass {
        v.extend(["--light-kdf", "--passphrase-file", p]);
    }
    v.extend_from_slice(extra);
    v
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every regular file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The files under `dir` that contain `needle`.
fn holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    files(dir)
        .into_iter()
        .filter(|p| {
            std::fs::read(p)
                .map(|b| b.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        })
        .collect()
}

fn wait_text(node: &NodeProcess, deadline: Instant, text: &str, reply: Option<&str>) {
    node.wait_stdout(deadline, |l| {
        serde_json::from_str::<serde_json::Value>(l)
            .is_ok_and(|v| v["text"] == text && v.get("reply").and_then(|r| r.as_str()) == reply)
    });
}

fn quit(mut node: NodeProcess, deadline: Instant) -> PathBuf {
    node.send_line("/quit");
    assert!(node.wait_exit(deadline).is_some(), "{}", node.transcript());
    node.stop_keep_data()
}

#[test]
fn an_encrypted_data_dir_holds_no_message_text_nor_key() {
    let deadline = Instant::now() + Duration::from_secs(TIMEOUT_SECS);
    let root = unique_temp_dir("enc-files");
    std::fs::create_dir_all(root.join("a")).unwrap();
    let pass = root.join("pass");
    std::fs::write(&pass, "encrypt everything\n").unwrap();
    std::fs::write(root.join("a/nodekey"), KNOWN_KEY_HEX).unwrap();

    let a = NodeProcess::spawn_in(
        "A",
        root.join("a"),
        &args(Some(s(&pass)), &["--mailserver", "--join", CHAT]),
    );
    let enode_a = a.enode(deadline);
    let peer_a = enode_a.to_string();
    let mut b = NodeProcess::spawn_in(
        "B",
        root.join("b"),
        &args(Some(s(&pass)), &["--peer", &peer_a, "--join", CHAT]),
    );
    let enode_b = b.enode(deadline);
    b.wait_connected(deadline, &enode_a);
    let mut a = a;
    let texts = [
        "public secret alpha",
        "direct secret bravo",
        "direct secret charlie",
    ];
    b.send_line(&format!("/send {CHAT} {}", texts[0]));
    wait_text(&a, deadline, texts[0], None);
    b.send_line(&format!("/dm {} {}", key_of(&enode_a), texts[1]));
    wait_text(&a, deadline, texts[1], None);
    a.send_line(&format!("/dm {} {}", key_of(&enode_b), texts[2]));
    wait_text(&b, deadline, texts[2], None);
    // The history is stored (and readable through the node).
    a.send_line(&format!("/history {}", key_of(&enode_b)));
    wait_text(&a, deadline, texts[2], Some("history"));

    let key_raw = hex::decode(KNOWN_KEY_HEX).unwrap();
    let check = |when: &str| {
        for text in texts {
            assert_eq!(
                holding(&root, text.as_bytes()),
                Vec::<PathBuf>::new(),
                "{when}: {text:?} in plaintext"
            );
        }
        for needle in [KNOWN_KEY_HEX.as_bytes(), &key_raw[..]] {
            assert_eq!(
                holding(&root, needle),
                Vec::<PathBuf>::new(),
                "{when}: identity key"
            );
        }
        for f in files(&root) {
            let name = f.file_name().unwrap().to_str().unwrap();
            if name.ends_with(".sqlite") {
                assert_eq!(
                    file_state(&f).unwrap(),
                    FileState::Encrypted,
                    "{when}: {name}"
                );
            }
        }
    };
    // While running (live WAL files) and after a clean stop.
    check("running");
    assert!(root.join("a/archive.sqlite").exists());
    let (a_dir, b_dir) = (quit(a, deadline), quit(b, deadline));
    check("stopped");
    for dir in [&a_dir, &b_dir] {
        assert!(
            !dir.join("messages.jsonl").exists(),
            "no plaintext export with a passphrase"
        );
    }
    std::fs::remove_dir_all(&root).unwrap();
}

/// Starts a node that must fail at once; returns its one error line.
fn failing_start(dir: &Path, args: &[&str], deadline: Instant) -> (String, PathBuf) {
    let mut node = NodeProcess::spawn_in("X", dir.to_path_buf(), args);
    let line = node.wait_stderr(deadline, |l| l.starts_with("hush: error:"));
    let status = node.wait_exit(deadline).expect("exits");
    assert_eq!(status.code(), Some(1), "{}", node.transcript());
    let transcript = node.transcript();
    assert!(!transcript.contains("panicked"), "{transcript}");
    assert!(!transcript.contains("Caused by"), "{transcript}");
    (line, node.stop_keep_data())
}

#[test]
fn a_wrong_or_missing_passphrase_is_a_clean_error_and_changes_nothing() {
    let deadline = Instant::now() + Duration::from_secs(TIMEOUT_SECS);
    let root = unique_temp_dir("enc-wrong");
    std::fs::create_dir_all(&root).unwrap();
    let (right, wrong) = (root.join("right"), root.join("wrong"));
    std::fs::write(&right, "the right one\n").unwrap();
    std::fs::write(&wrong, "another one\n").unwrap();

    let a = NodeProcess::spawn_in("A", root.join("a"), &args(Some(s(&right)), &[]));
    let enode = a.enode(deadline);
    let dir = quit(a, deadline);

    let (line, dir) = failing_start(&dir, &args(Some(s(&wrong)), &[]), deadline);
    assert!(line.contains("wrong passphrase"), "{line}");
    assert!(line.contains(STORE_FILE), "{line}");
    let (line, dir) = failing_start(&dir, &args(None, &[]), deadline);
    assert!(line.contains("is encrypted"), "{line}");
    assert!(line.contains("--passphrase-file"), "{line}");

    // The right passphrase still opens the same identity.
    let a = NodeProcess::spawn_in("A", dir, &args(Some(s(&right)), &[]));
    assert_eq!(a.enode(deadline).public_key, enode.public_key);
    quit(a, deadline);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_plaintext_store_is_encrypted_through_kills_and_keeps_its_history() {
    let deadline = Instant::now() + Duration::from_secs(TIMEOUT_SECS);
    let root = unique_temp_dir("enc-migrate");
    std::fs::create_dir_all(&root).unwrap();
    let pass = root.join("pass");
    std::fs::write(&pass, "migrate me\n").unwrap();

    // Plaintext history: 1:1 and public messages B received.
    let mut a = NodeProcess::spawn_in("A", root.join("a"), &args(None, &["--join", CHAT]));
    let enode_a = a.enode(deadline);
    let peer_a = enode_a.to_string();
    let b = NodeProcess::spawn_in(
        "B",
        root.join("b"),
        &args(None, &["--peer", &peer_a, "--join", CHAT]),
    );
    let enode_b = b.enode(deadline);
    b.wait_connected(deadline, &enode_a);
    let (ka, kb) = (key_of(&enode_a), key_of(&enode_b));
    let dms: Vec<String> = (0..4).map(|i| format!("history dm {i}")).collect();
    let posts: Vec<String> = (0..3).map(|i| format!("history post {i}")).collect();
    for t in &dms {
        a.send_line(&format!("/dm {kb} {t}"));
        wait_text(&b, deadline, t, None);
    }
    for t in &posts {
        a.send_line(&format!("/send {CHAT} {t}"));
        wait_text(&b, deadline, t, None);
    }
    // SIGKILL: the store's last commits may still be in its WAL only.
    let mut b_dir = b.stop_keep_data();
    let store = b_dir.join(STORE_FILE);
    assert_eq!(file_state(&store).unwrap(), FileState::Plaintext);
    // What the check at the end looks for is there in the clear now.
    assert!(holding(&b_dir, dms[0].as_bytes())
        .iter()
        .any(|p| p.to_str().unwrap().contains(STORE_FILE)));

    // kill -9 at two points of the migration.
    for (step, after) in [
        ("exported", FileState::Plaintext),
        ("renamed", FileState::Encrypted),
    ] {
        let mut node = NodeProcess::spawn_in_env(
            "B",
            b_dir.clone(),
            &args(Some(s(&pass)), &["--peer", &peer_a]),
            &[(INJECT_CRASH_ENV, step)],
        );
        let status = node.wait_exit(deadline).expect("crashes");
        assert_eq!(
            status.code(),
            Some(INJECTED_CRASH_EXIT_CODE),
            "{}",
            node.transcript()
        );
        b_dir = node.stop_keep_data();
        assert_eq!(file_state(&store).unwrap(), after, "after {step}");
        assert_eq!(encrypting_path(&store).exists(), step == "exported");
    }

    let mut b = NodeProcess::spawn_in("B", b_dir, &args(Some(s(&pass)), &["--peer", &peer_a]));
    assert_eq!(b.enode(deadline).public_key, enode_b.public_key);
    b.wait_stderr(deadline, |l| {
        l.contains("messages.jsonl is a plaintext export")
    });
    b.send_line(&format!("/history {ka}"));
    for t in &dms {
        wait_text(&b, deadline, t, Some("history"));
    }
    b.send_line(&format!("/history {CHAT}"));
    for t in &posts {
        wait_text(&b, deadline, t, Some("history"));
    }
    assert!(!encrypting_path(&store).exists());
    // The store files hold none of it in plaintext (messages.jsonl, written before, does).
    for t in dms.iter().chain(&posts) {
        let leaks: Vec<PathBuf> = holding(&b.data_dir, t.as_bytes())
            .into_iter()
            .filter(|p| !p.ends_with("messages.jsonl"))
            .collect();
        assert_eq!(leaks, Vec::<PathBuf>::new(), "{t:?}");
    }
    quit(b, deadline);
    drop(a);
    std::fs::remove_dir_all(&root).unwrap();
}
