//! `--script` parsing and feeding.

use super::*;

fn parse(text: &str) -> Result<Script, ScriptError> {
    parse_script(text, Path::new("s.txt"))
}

fn line_error(text: &str) -> (usize, String) {
    match parse(text) {
        Err(ScriptError::Line { line, reason, .. }) => (line, reason),
        other => panic!("expected a line error, got {other:?}"),
    }
}

#[test]
fn entries_keep_times_commands_and_line_numbers_skipping_blanks_and_comments() {
    let s = parse("# a comment\n\n0 /join status\n  # indented comment\n1500   /send status hi # not a comment\n1500 /quit\n")
        .unwrap();
    assert_eq!(
        s.entries,
        vec![
            ScriptEntry {
                line: 3,
                at_ms: 0,
                command: "/join status".into()
            },
            ScriptEntry {
                line: 5,
                at_ms: 1500,
                command: "/send status hi # not a comment".into()
            },
            ScriptEntry {
                line: 6,
                at_ms: 1500,
                command: "/quit".into()
            },
        ]
    );
}

#[test]
fn an_empty_script_is_valid() {
    assert!(parse("").unwrap().entries.is_empty());
    assert!(parse("# nothing\n\n").unwrap().entries.is_empty());
}

#[test]
fn a_bad_command_is_refused_with_the_parsers_reason_and_its_line() {
    let (line, reason) = line_error("0 /join a\n10 /frobnicate x\n");
    assert_eq!(line, 2);
    assert!(reason.contains("unknown command"), "{reason}");
    let (line, reason) = line_error("0 /send\n");
    assert_eq!(line, 1);
    assert!(reason.contains("/send"), "{reason}");
}

#[test]
fn a_missing_or_bad_time_is_refused() {
    let (line, reason) = line_error("/send status hi\n");
    assert_eq!(line, 1);
    assert!(reason.contains("expected AT_MS"), "{reason}");
    assert!(line_error("-5 /quit\n").1.contains("expected AT_MS"));
    assert!(line_error("1.5 /quit\n").1.contains("expected AT_MS"));
    assert!(line_error("100\n").1.contains("missing the command"));
    let late = format!("{} /quit\n", MAX_SCRIPT_AT_MS + 1);
    assert!(line_error(&late).1.contains("later than"));
    assert!(parse(&format!("{MAX_SCRIPT_AT_MS} /quit\n")).is_ok());
}

#[test]
fn times_must_not_decrease() {
    let (line, reason) = line_error("100 /whoami\n100 /whoami\n# c\n50 /quit\n");
    assert_eq!(line, 4);
    assert!(reason.contains("earlier than line 2"), "{reason}");
}

#[test]
fn errors_name_the_file_and_line() {
    let e = parse("\n\nx /quit").unwrap_err().to_string();
    assert!(e.starts_with("s.txt:3: "), "{e}");
}

#[test]
fn too_many_commands_are_refused() {
    let text = "0 /whoami\n".repeat(MAX_SCRIPT_COMMANDS + 1);
    match parse(&text) {
        Err(ScriptError::TooManyCommands { line, .. }) => assert_eq!(line, MAX_SCRIPT_COMMANDS + 1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn files_too_large_or_not_utf8_or_missing_are_refused() {
    let dir = crate::test_util::temp_dir("script");
    let big = dir.join("big");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(MAX_SCRIPT_BYTES + 1).unwrap();
    assert!(matches!(
        load_script(&big),
        Err(ScriptError::TooLarge { .. })
    ));
    let bad = dir.join("bad");
    std::fs::write(&bad, b"0 /send a \xff\n").unwrap();
    assert!(matches!(
        load_script(&bad),
        Err(ScriptError::NotUtf8 { .. })
    ));
    assert!(matches!(
        load_script(&dir.join("absent")),
        Err(ScriptError::Io { .. })
    ));
    let good = dir.join("good");
    std::fs::write(&good, "0 /whoami\n").unwrap();
    assert_eq!(load_script(&good).unwrap().entries.len(), 1);
    let e = parse_script_arg(bad.to_str().unwrap()).unwrap_err();
    assert!(e.contains("not UTF-8"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Commands reach the stdin queue in order and unchanged; the queue stays open for stdin.
#[test]
fn feed_hands_the_commands_to_the_stdin_queue_in_order() {
    let script = parse("0 /join a\n0 /send a one\n1 /send a two\n").unwrap();
    let lines = smol::block_on(async {
        let (tx, rx) = smol::channel::unbounded();
        // A start in the past: every command is due at once (no wall-time assertion).
        let start = Instant::now()
            .checked_sub(Duration::from_secs(1))
            .unwrap_or_else(Instant::now);
        feed_script(script, start, tx.clone()).await;
        assert!(!tx.is_closed());
        drop(tx);
        let mut out = Vec::new();
        while let Ok(l) = rx.recv().await {
            out.push(l);
        }
        out
    });
    assert_eq!(
        lines,
        vec![
            StdinLine::Text("/join a".into()),
            StdinLine::Text("/send a one".into()),
            StdinLine::Text("/send a two".into()),
        ]
    );
}
