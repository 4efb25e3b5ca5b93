//! Issue 18 item 3: `hush node` runs unattended (under Shadow, on many hosts). A node driven
//! only by `--script` with stdin at /dev/null sends on time and keeps running after its script
//! and stdin end, until a signal or a scripted `/quit`; received messages carry `received_at`
//! next to the sender's `timestamp`; `--nat extip:IP` is the address in the printed enode;
//! `--nodekeyhex` is the node key, as in geth.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use hush_tests::{hush_bin, unique_temp_dir, NodeProcess};

const TIMEOUT_SECS: u64 = 60;
/// What B prints when a peer disconnects with ClientQuitting (geth's text for 0x08).
const QUITTING: &str = "reason=\"client quitting (by peer)\"";

/// A script file in a fresh directory (removed by the caller with [`remove_parent`]).
fn script_file(text: &str) -> PathBuf {
    let dir = unique_temp_dir("script");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("script.txt");
    std::fs::write(&file, text).unwrap();
    file
}

fn remove_parent(file: &std::path::Path) {
    if let Some(dir) = file.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn a_scripted_node_with_no_stdin_sends_and_runs_until_signalled() {
    let deadline = Instant::now() + Duration::from_secs(TIMEOUT_SECS);
    let mut b = NodeProcess::spawn("B", &["--json", "--join", "chat"]);
    let enode_b = b.enode(deadline).to_string();
    let script = script_file(
        "# the sender of issue 18: no terminal, no stdin\n\
         0 /join chat\n\
         \n\
         300 /send chat scripted hello\n\
         600 /whoami\n",
    );
    let mut a = NodeProcess::spawn_with(
        "A",
        unique_temp_dir("e2e-A"),
        &[],
        &["--peer", &enode_b, "--script", script.to_str().unwrap()],
        false,
    );
    let enode_a = a.enode(deadline);
    b.wait_connected(deadline, &enode_a);
    let line = b.wait_stdout(deadline, |l| l.contains("scripted hello"));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let timestamp = v["timestamp"].as_u64().expect("timestamp");
    let received_at = v["received_at"].as_u64().expect("received_at");
    // One machine, one clock: the message cannot be received before it was sent.
    assert!(received_at >= timestamp, "{line}");
    // The same field in the data dir's record of accepted messages.
    let jsonl = std::fs::read_to_string(b.data_dir.join("messages.jsonl")).unwrap();
    let rec: serde_json::Value = serde_json::from_str(
        jsonl
            .lines()
            .find(|l| l.contains("scripted hello"))
            .expect("messages.jsonl line"),
    )
    .unwrap();
    assert_eq!(rec["received_at"], received_at, "{jsonl}");
    assert_eq!(rec["timestamp"], timestamp);
    // And in the store: /history answers with it.
    b.send_line("/history chat");
    let history = b.wait_stdout(deadline, |l| l.contains("\"reply\":\"history\""));
    let h: serde_json::Value = serde_json::from_str(&history).unwrap();
    assert_eq!(h["received_at"], received_at, "{history}");
    // The script ran to its end (its /whoami answered) with stdin long closed ...
    a.wait_stdout(deadline, |l| l.starts_with("whoami "));
    a.wait_stderr(deadline, |l| {
        l.starts_with("hush: script ") && l.contains("done")
    });
    // ... and the node is still up: only the signal stops it, telling its peer.
    assert!(a.wait_exit(Instant::now()).is_none(), "{}", a.transcript());
    a.signal("TERM");
    b.wait_stderr(deadline, |l| {
        l.starts_with("hush: peer disconnected") && l.contains(QUITTING)
    });
    let status = a.wait_exit(deadline).expect("A exits after SIGTERM");
    assert!(status.success(), "{status}\n{}", a.transcript());
    remove_parent(&script);
}

#[test]
fn a_scripted_quit_or_sigint_stops_a_scripted_node() {
    let deadline = Instant::now() + Duration::from_secs(TIMEOUT_SECS);
    let script = script_file("0 /whoami\n100 /quit\n");
    let mut a = NodeProcess::spawn_with(
        "A",
        unique_temp_dir("e2e-A"),
        &[],
        &["--script", script.to_str().unwrap()],
        false,
    );
    a.wait_stdout(deadline, |l| l.starts_with("whoami "));
    let status = a
        .wait_exit(deadline)
        .expect("A exits after a scripted /quit");
    assert!(status.success(), "{status}\n{}", a.transcript());

    // Script and stdin together: the script's command, then a typed one after its end.
    let idle = script_file("0 /whoami\n");
    let mut c = NodeProcess::spawn_with(
        "C",
        unique_temp_dir("e2e-C"),
        &[],
        &["--script", idle.to_str().unwrap()],
        true,
    );
    c.wait_stdout(deadline, |l| l.starts_with("whoami "));
    c.wait_stderr(deadline, |l| {
        l.starts_with("hush: script ") && l.contains("done")
    });
    c.send_line("/whoami");
    c.wait_stdout(deadline, |l| l.starts_with("whoami "));
    c.signal("INT");
    c.wait_stderr(deadline, |l| l == "hush: SIGINT: stopping");
    let status = c.wait_exit(deadline).expect("C exits after SIGINT");
    assert!(status.success(), "{status}\n{}", c.transcript());
    remove_parent(&script);
    remove_parent(&idle);
}

/// A bad script is a usage error before anything starts, naming FILE:LINE and the reason.
#[test]
fn a_malformed_script_is_refused_at_start_with_its_line() {
    let script = script_file("0 /join chat\n100 /sned chat typo\n");
    let dir = unique_temp_dir("e2e-bad-script");
    let out = Command::new(hush_bin())
        .args(["node", "--data-dir"])
        .arg(&dir)
        .arg("--script")
        .arg(&script)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let at = format!("{}:2: unknown command", script.display());
    assert!(stderr.contains(&at), "{stderr}");
    assert!(!dir.exists(), "nothing may start: {}", dir.display());
    remove_parent(&script);
}

#[test]
fn nat_extip_is_the_address_in_the_printed_and_whoami_enode() {
    let deadline = Instant::now() + Duration::from_secs(TIMEOUT_SECS);
    let mut a = NodeProcess::spawn("A", &["--listen", "0.0.0.0:0", "--nat", "extip:192.0.2.7"]);
    let enode = a.enode(deadline);
    assert_eq!(enode.addr.ip().to_string(), "192.0.2.7");
    assert_ne!(enode.addr.port(), 0);
    a.send_line("/whoami");
    let whoami = a.wait_stdout(deadline, |l| l.starts_with("whoami "));
    assert!(whoami.contains(&format!("enode={enode}")), "{whoami}");

    // Without --nat, an unspecified listen address is printed as it is, with a warning.
    let b = NodeProcess::spawn("B", &["--listen", "0.0.0.0:0"]);
    let enode_b = b.enode(deadline);
    assert!(enode_b.addr.ip().is_unspecified());
    b.wait_stderr(deadline, |l| {
        l.starts_with("hush: warning: listening on 0.0.0.0:") && l.contains("--nat extip:")
    });
}

/// geth's example key and its address (web3.js `eth.accounts` documentation).
const GETH_EXAMPLE_SECRET: &str =
    "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
const GETH_EXAMPLE_ADDRESS: &str = "2c7536e3605d9c16a7a3d7b1898e529396a65c23";

#[test]
fn nodekeyhex_and_nodekey_are_the_node_key() {
    let deadline = Instant::now() + Duration::from_secs(TIMEOUT_SECS);
    let a = NodeProcess::spawn("A", &["--nodekeyhex", GETH_EXAMPLE_SECRET]);
    let enode = a.enode(deadline);
    // An Ethereum address is the last 20 bytes of keccak256 of the public key.
    let hash = hush_core::keccak::keccak256(&enode.public_key);
    assert_eq!(hex::encode(&hash[12..]), GETH_EXAMPLE_ADDRESS);
    assert!(
        !a.transcript().contains(GETH_EXAMPLE_SECRET),
        "the secret was printed:\n{}",
        a.transcript()
    );
    let data_dir = a.stop_keep_data();

    // The data dir adopted it: the same key from a file is accepted, another one refused.
    let key_file = script_file(&format!("{GETH_EXAMPLE_SECRET}\n"));
    let b = NodeProcess::spawn_in("B", data_dir, &["--nodekey", key_file.to_str().unwrap()]);
    assert_eq!(b.enode(deadline).public_key, enode.public_key);
    let data_dir = b.stop_keep_data();
    let other = "b71c71a67e1177ad4e901695e1b4b9ee17ae16c6668d313eac2f96dbcda3f291";
    let out = Command::new(hush_bin())
        .args(["node", "--data-dir"])
        .arg(&data_dir)
        .args(["--nodekeyhex", other])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("refusing to replace"), "{stderr}");
    assert!(!stderr.contains(other), "{stderr}");
    let _ = std::fs::remove_dir_all(&data_dir);
    remove_parent(&key_file);
}
