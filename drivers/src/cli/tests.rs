//! `hush node` argument parsers and the stdin reader.

use super::*;

fn read_all(input: &'static [u8]) -> Vec<StdinLine> {
    smol::block_on(async {
        let (tx, rx) = smol::channel::unbounded();
        forward_stdin(input, tx).await;
        let mut out = Vec::new();
        while let Ok(line) = rx.try_recv() {
            out.push(line);
        }
        out
    })
}

/// Issue 16 item 1: a line that is not UTF-8 is passed on as such and the lines after it are
/// still read (the old reader stopped at the first invalid line, `/quit` included).
#[test]
fn stdin_reader_keeps_reading_after_a_line_that_is_not_utf8() {
    let lines = read_all(b"/whoami\nbad\xff\xfe\n/whoami\r\n\n/quit");
    assert_eq!(
        lines,
        vec![
            StdinLine::Text("/whoami".into()),
            StdinLine::NotUtf8 {
                number: 2,
                bytes: 5
            },
            StdinLine::Text("/whoami\r".into()),
            StdinLine::Text(String::new()),
            StdinLine::Text("/quit".into()),
        ]
    );
}

#[test]
fn stdin_reader_reports_every_bad_line_with_its_number() {
    let lines = read_all(b"\xc3\n\xc3\xa9\n\x80\x80\n");
    assert_eq!(
        lines,
        vec![
            StdinLine::NotUtf8 {
                number: 1,
                bytes: 1
            },
            StdinLine::Text("é".into()),
            StdinLine::NotUtf8 {
                number: 3,
                bytes: 2
            },
        ]
    );
}

/// Issue 16 item 5: a floor on numeric flags, checked when the arguments are parsed.
#[test]
fn at_least_refuses_below_the_minimum_and_says_why() {
    let parse = parse_at_least(MIN_REDIAL_MAX_MS, "busy loop");
    assert_eq!(parse("100"), Ok(100));
    assert_eq!(parse("120000"), Ok(120_000));
    let err = parse("0").unwrap_err();
    assert!(
        err.contains("at least 100") && err.contains("busy loop"),
        "{err}"
    );
    assert!(parse("99").is_err());
    assert!(parse("-1").unwrap_err().contains("whole number"));
    assert!(parse("x").is_err());
}

#[test]
fn probability_must_be_within_0_and_1() {
    assert_eq!(parse_probability("0"), Ok(0.0));
    assert_eq!(parse_probability("1"), Ok(1.0));
    for bad in ["-0.1", "1.01", "NaN", "inf", "x"] {
        assert!(parse_probability(bad).is_err(), "{bad}");
    }
}
