//! Hostile or mistaken stdin of a real `hush node` (issue 16 items 1 and 8): a line that is not
//! UTF-8 is reported and skipped, not the end of every later command; unknown chats get a
//! one-line answer; a huge unknown command is quoted back cut short.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hush_tests::{hush_bin, unique_temp_dir};

/// Bound on each node run: the commands take milliseconds; the old code never exited.
const TIMEOUT_SECS: u64 = 60;

struct Run {
    exited: bool,
    stdout: String,
    stderr: String,
}

/// `input | hush node --data-dir <fresh>`, stdin closed after `input`; waits for the node to
/// exit (the input ends with `/quit`) or kills it at the deadline.
fn pipe_through_node(input: Vec<u8>) -> Run {
    let dir = unique_temp_dir("stdin-input");
    let mut child = Command::new(hush_bin())
        .args(["node", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .env_remove("HUSH_PASSPHRASE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting hush");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let read_all = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = read_all(Box::new(child.stdout.take().unwrap()));
    let err = read_all(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(TIMEOUT_SECS);
    let mut exited = false;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            exited = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if !exited {
        let _ = child.kill();
    }
    let _ = child.wait();
    let _ = writer.join();
    let run = Run {
        exited,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    let _ = std::fs::remove_dir_all(&dir);
    run
}

#[test]
fn a_line_that_is_not_utf8_is_reported_and_reading_goes_on() {
    let run = pipe_through_node(b"/whoami\nbad\xff\xfe\n/whoami\n/stats\n/quit\n".to_vec());
    let transcript = format!("stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(
        run.exited,
        "/quit after the bad line was ignored\n{transcript}"
    );
    let whoami = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("whoami "))
        .count();
    assert_eq!(whoami, 2, "both /whoami answered\n{transcript}");
    let reports: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("not UTF-8"))
        .collect();
    assert_eq!(
        reports,
        ["hush: error: stdin line 2 is not UTF-8 (5 bytes); skipped"],
        "{transcript}"
    );
    assert!(
        run.stdout
            .lines()
            .any(|l| l == "stat driver.stdin_lines_not_utf8 1"),
        "{transcript}"
    );
}

#[test]
fn unknown_chats_get_one_line_answers_and_huge_input_is_cut() {
    let mut input = b"/join known\n/history nosuchchat\n/history known\n/leave nosuch\n".to_vec();
    input.extend_from_slice(b"/");
    input.extend(std::iter::repeat_n(b'x', 1_000_000));
    input.extend_from_slice(b"\n/send notjoined hi\n/send notjoined again\n/chats\n/quit\n");
    let run = pipe_through_node(input);
    let transcript = format!(
        "stdout:\n{}\nstderr ({} bytes):\n{}",
        run.stdout,
        run.stderr.len(),
        &run.stderr[..run.stderr.len().min(4000)]
    );
    assert!(run.exited, "{transcript}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    let one = |needle: &str| {
        let found: Vec<&&str> = lines.iter().filter(|l| l.contains(needle)).collect();
        assert_eq!(found.len(), 1, "{needle:?}\n{transcript}");
        found[0].to_string()
    };
    assert_eq!(
        one("nosuchchat"),
        "hush: error: /history: no chat \"nosuchchat\" (see /chats)"
    );
    assert_eq!(
        one("/history known"),
        "hush: /history known: no messages stored"
    );
    assert_eq!(
        one("nosuch\""),
        "hush: error: /leave: not in public chat \"nosuch\" (see /chats)"
    );
    let unknown = one("unknown command");
    assert!(unknown.len() < 400, "{unknown}");
    assert!(unknown.contains("more bytes)"), "{unknown}");
    // The first /send to a chat not joined joins it and says so, once.
    assert_eq!(
        one("joined public chat notjoined"),
        "hush: joined public chat notjoined to send to it (/leave notjoined to stop receiving it)"
    );
    assert!(
        run.stdout
            .lines()
            .any(|l| l == "chat public notjoined notjoined"),
        "{transcript}"
    );
    assert!(run.stderr.len() < 10_000, "{transcript}");
}
