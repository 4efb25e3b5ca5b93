//! The `hush` binary's command line. Besides checking the CLI, this integration test makes
//! `cargo test --workspace` build `target/<profile>/hush`, which hush-tests' e2e test runs.

use std::process::{Command, Output};

fn hush(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hush"))
        .args(args)
        .output()
        .expect("running hush")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_lists_subcommands() {
    let o = hush(&["--help"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("node") && text.contains("sim"), "{text}");
}

#[test]
fn node_help_lists_flags() {
    let o = hush(&["node", "--help"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    for flag in [
        "--data-dir",
        "--listen",
        "--peer",
        "--join",
        "--json",
        "--mailserver-peer",
    ] {
        assert!(text.contains(flag), "missing {flag} in:\n{text}");
    }
}

#[test]
fn garbage_peer_is_a_clear_error() {
    let o = hush(&[
        "node",
        "--data-dir",
        "/nonexistent/never-created",
        "--peer",
        "garbage",
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "usage error exit code; stderr:\n{}",
        stderr(&o)
    );
    let err = stderr(&o);
    assert!(err.contains("'garbage'") && err.contains("--peer"), "{err}");
    assert!(
        err.contains("enode://"),
        "says what an enode looks like: {err}"
    );
    assert!(!std::path::Path::new("/nonexistent/never-created").exists());
}

#[test]
fn short_enode_key_is_a_clear_error() {
    let o = hush(&[
        "node",
        "--data-dir",
        "/nonexistent/x",
        "--peer",
        "enode://abcd@127.0.0.1:30303",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("128 hex characters"), "{}", stderr(&o));
}

/// Issue 16 item 7: a key off the curve is refused at parse time (exit 2, usage error), for
/// `--peer` and `--mailserver-peer` alike, before the data directory is created.
#[test]
fn enode_key_off_the_curve_is_a_usage_error() {
    // X = 1, Y = 1 is not on y² = x³ + 7.
    let key = format!("{}01{}01", "00".repeat(31), "00".repeat(31));
    let url = format!("enode://{key}@127.0.0.1:30303");
    for flag in ["--peer", "--mailserver-peer"] {
        let dir = "/nonexistent/hush-off-curve";
        let o = hush(&["node", "--data-dir", dir, flag, &url]);
        assert_eq!(o.status.code(), Some(2), "{flag}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(flag) && err.contains("not a valid secp256k1 public key"),
            "{flag}: {err}"
        );
        assert!(!std::path::Path::new(dir).exists());
    }
}

/// Issue 16 item 5: numeric flags where 0 (or too little) is nonsense are refused at parse
/// time (exit 2) with the minimum and the reason. Each run would also end at once if the flag
/// were accepted (a node gets `/quit` on stdin, a bench a binary that does not exist), so the
/// test fails rather than hangs on code without the check.
#[test]
fn nonsense_numbers_are_usage_errors() {
    let dir = std::env::temp_dir().join(format!("hush-cli-min-flags-{}", std::process::id()));
    let dir = dir.to_str().unwrap();
    let no_bin = "/nonexistent/hush-bench-bin";
    for (args, says) in [
        (&["node", "--redial-max-ms", "0"][..], "at least 100"),
        (&["node", "--redial-max-ms", "99"][..], "busy loop"),
        (&["node", "--message-ttl-secs", "0"][..], "at least 1"),
        (
            &["node", "--mailserver-max-envelopes", "0"][..],
            "at least 1",
        ),
        (&["node", "--inject-loss", "1.5"][..], "within [0, 1]"),
        (&["node", "--inject-loss", "NaN"][..], "within [0, 1]"),
        (&["bench", "e2e", "--messages", "0"][..], "at least 1"),
        (&["bench", "e2e", "--rounds", "0"][..], "at least 1"),
        (&["bench", "e2e", "--stall-secs", "0"][..], "at least 1"),
    ] {
        let mut full = args.to_vec();
        if args[0] == "node" {
            full.extend(["--data-dir", dir, "--listen", "127.0.0.1:0"]);
        } else {
            full.extend(["--bin-a", no_bin]);
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_hush"))
            .args(&full)
            .env_remove("HUSH_PASSPHRASE")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("running hush");
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().unwrap();
            let _ = stdin.write_all(b"/quit\n");
        }
        let o = child.wait_with_output().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(args[args.len() - 2]) && err.contains(says),
            "{args:?}: {err}"
        );
        assert!(
            !std::path::Path::new(dir).exists(),
            "{args:?} created {dir}"
        );
    }
}

#[test]
fn data_dir_is_required() {
    let o = hush(&["node"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--data-dir"), "{}", stderr(&o));
}

#[test]
fn corrupt_nodekey_is_reported_not_replaced() {
    let dir = std::env::temp_dir().join(format!("hush-cli-badkey-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("nodekey"), "zz").unwrap();
    let o = hush(&["node", "--data-dir", dir.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("expected 64 hex characters"),
        "{}",
        stderr(&o)
    );
    assert!(
        o.stdout.is_empty(),
        "nothing on stdout before the enode line"
    );
    assert_eq!(std::fs::read_to_string(dir.join("nodekey")).unwrap(), "zz");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 16 item 4: scenarios that cannot fit in memory are refused before anything is
/// allocated (they used to abort with exit 134 on a failed allocation of 57 GB / 4.7 GB).
#[test]
fn sim_refuses_scenarios_too_big_for_memory() {
    for args in [
        &["sim", "--no-progress", "--nodes", "10000000"][..],
        &[
            "sim",
            "--no-progress",
            "--set",
            "nodes=10",
            "--set",
            "messages=1000000000",
            "--set",
            "message_interval_ms=0",
        ][..],
    ] {
        let o = hush(args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("needs about") && err.contains("--max-memory-gb"),
            "{args:?}: {err}"
        );
    }
    // A limit given on the command line is the one applied.
    let o = hush(&[
        "sim",
        "--no-progress",
        "--nodes",
        "100000",
        "--max-memory-gb",
        "1",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("limit of 1.0 GB"), "{err}");
}
