//! Entry points of the drivers' fuzz targets, shared by the libFuzzer binary (nightly) and
//! the stable test (`tests/command.rs`). An entry point never panics on any input.

use hush_drivers::commands::parse_line;

/// The stdin command parser: the bytes as one line (lossy UTF-8, as the driver reads stdin)
/// and line by line. A blank line is `Ok(None)`, a line with text a command or an error, the
/// same with a line terminator added.
pub fn command(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for line in std::iter::once(&*text).chain(text.lines()) {
        let parsed = parse_line(line);
        if let Ok(None) = parsed {
            assert!(line.trim().is_empty(), "a line with text parsed to nothing");
        }
        // A line given again with its terminator parses the same.
        assert_eq!(parse_line(&format!("{line}\n")), parsed);
    }
}

/// Seed lines: one of each command, and some broken ones.
pub fn seeds() -> Vec<Vec<u8>> {
    let key = format!("0x04{}", "ab".repeat(64));
    [
        "/join status".to_string(),
        "/leave status".into(),
        "/send status hello   world".into(),
        "/request status 1570000000".into(),
        "/request status".into(),
        format!("/dm {key} hi there"),
        format!("/group create friends {key} {}", "cd".repeat(64)),
        format!("/group add friends {key}"),
        "/group send friends hello".into(),
        format!("/group remove friends {key}"),
        format!("/group admin friends {key}"),
        "/group rename friends new name".into(),
        "/group join friends".into(),
        "/group leave friends".into(),
        "/history status".into(),
        "/whoami".into(),
        "/devices".into(),
        "/pair abc-1".into(),
        "/unpair abc-1".into(),
        "/format public status protobuf".into(),
        format!("/format dm {key} transit"),
        "/format group friends auto".into(),
        "/chats".into(),
        "/stats".into(),
        "/quit".into(),
        "hello without a slash".into(),
        "/send".into(),
        "/dm 0x04zz hi".into(),
        "   \r\n".into(),
        "/join a\n/send a b\n/quit\n".into(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

/// Stable runner: each path argument (a file or a directory) is one or more inputs; stdin
/// when none.
pub fn run_inputs(target: fn(&[u8])) {
    use std::io::Read;
    let paths: Vec<std::path::PathBuf> = std::env::args_os().skip(1).map(Into::into).collect();
    if paths.is_empty() {
        let mut data = Vec::new();
        std::io::stdin().read_to_end(&mut data).expect("read stdin");
        target(&data);
        return;
    }
    for path in paths {
        let files: Vec<std::path::PathBuf> = if path.is_dir() {
            let mut v: Vec<_> = std::fs::read_dir(&path)
                .expect("read dir")
                .map(|e| e.expect("dir entry").path())
                .collect();
            v.sort();
            v
        } else {
            vec![path]
        };
        for file in files {
            target(&std::fs::read(&file).expect("read input file"));
            println!("ok {}", file.display());
        }
    }
}
