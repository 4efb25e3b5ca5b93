//! End to end: the application-layer form settings of `hush node` (issue 13 item 2). A runs
//! `--payload-format protobuf` (status-go ≥ 0.36.2's form), B the default `auto`: public chat,
//! 1:1 and a group work both ways, B answering in the form it received, and `/format` switching
//! one chat of B back to Transit, which A still reads (hush receives both forms always).

use std::time::{Duration, Instant};

use hush_drivers::driver::GROUP_UPDATED_PREFIX;
use hush_tests::{key_of, NodeProcess};

const TIMEOUT_SECS: u64 = 90;
const CHAT: &str = "formats";

fn wait_message(node: &NodeProcess, deadline: Instant, text: &str) -> serde_json::Value {
    let line = node.wait_stdout(deadline, |l| {
        serde_json::from_str::<serde_json::Value>(l)
            .is_ok_and(|v| v["text"] == text && v.get("reply").is_none())
    });
    serde_json::from_str(&line).unwrap()
}

#[test]
fn protobuf_and_auto_nodes_talk_in_every_chat_kind() {
    let deadline = Instant::now() + Duration::from_secs(TIMEOUT_SECS);
    let mut a = NodeProcess::spawn(
        "A",
        &[
            "--listen",
            "127.0.0.1:0",
            "--json",
            "--join",
            CHAT,
            "--payload-format",
            "protobuf",
        ],
    );
    let enode_a = a.enode(deadline);
    let peer = enode_a.to_string();
    let mut b = NodeProcess::spawn("B", &["--peer", &peer, "--json", "--join", CHAT]);
    let enode_b = b.enode(deadline);
    a.wait_connected(deadline, &enode_b);
    b.wait_connected(deadline, &enode_a);
    let (ka, kb) = (key_of(&enode_a), key_of(&enode_b));

    a.send_line(&format!("/send {CHAT} public in protobuf"));
    assert_eq!(
        wait_message(&b, deadline, "public in protobuf")["from"],
        ka.as_str()
    );
    b.send_line(&format!("/send {CHAT} public answered"));
    wait_message(&a, deadline, "public answered");

    a.send_line(&format!("/dm {kb} dm in protobuf"));
    assert_eq!(wait_message(&b, deadline, "dm in protobuf")["kind"], "dm");
    b.send_line(&format!("/format dm {ka} transit"));
    b.send_line(&format!("/dm {ka} dm in transit"));
    wait_message(&a, deadline, "dm in transit");

    a.send_line(&format!("/group create pair {kb}"));
    b.wait_stderr(deadline, |l| {
        l.starts_with(GROUP_UPDATED_PREFIX) && l.contains("name=\"pair\"")
    });
    a.send_line("/group send pair group in protobuf");
    wait_message(&b, deadline, "group in protobuf");
    b.send_line("/format group pair protobuf");
    b.send_line("/group send pair group answered");
    wait_message(&a, deadline, "group answered");

    // A malformed /format is refused by the parser, one naming an unknown chat by the node;
    // both are reported and the node keeps running. The /format lines above were accepted.
    b.send_line("/format public formats json");
    b.send_line("/format public not-joined auto");
    b.send_line(&format!("/send {CHAT} still here"));
    wait_message(&a, deadline, "still here");
    b.wait_stderr(deadline, |l| {
        l.contains("hush: error") && l.contains("not-joined")
    });
    let errors: Vec<String> = b
        .transcript()
        .lines()
        .filter(|l| l.contains("hush: error"))
        .map(str::to_string)
        .collect();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors[0].contains("json") && errors[1].contains("not-joined"),
        "{errors:#?}"
    );
}
