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

/// `NodeArgs` as the binary parses them.
#[derive(clap::Parser, Debug)]
struct Args {
    #[command(flatten)]
    node: NodeArgs,
}

fn args(extra: &[&str]) -> Result<NodeArgs, clap::Error> {
    use clap::Parser as _;
    let mut argv = vec!["hush", "--data-dir", "/nonexistent"];
    argv.extend_from_slice(extra);
    Args::try_parse_from(argv).map(|a| a.node)
}

/// Issue 18: `--nat` as geth spells it.
#[test]
fn nat_takes_extip_none_and_any() {
    let ip: IpAddr = "10.0.0.7".parse().unwrap();
    assert_eq!(parse_nat("extip:10.0.0.7"), Ok(Nat::ExtIp(ip)));
    assert_eq!(parse_nat("ExtIP:10.0.0.7"), Ok(Nat::ExtIp(ip)));
    assert_eq!(
        parse_nat("extip:::1"),
        Ok(Nat::ExtIp("::1".parse().unwrap()))
    );
    assert_eq!(parse_nat("none"), Ok(Nat::ListenAddress));
    assert_eq!(parse_nat("any"), Ok(Nat::ListenAddress));
    assert!(parse_nat("extip:0.0.0.0")
        .unwrap_err()
        .contains("peers can dial"));
    assert!(parse_nat("extip:").is_err());
    assert!(parse_nat("extip:10.0.0.7:30303").is_err());
    assert!(parse_nat("upnp").unwrap_err().contains("no UPnP"));
    assert!(parse_nat("pmp:192.168.1.1").is_err());
    assert!(parse_nat("stun").is_err());
    let listen: IpAddr = "0.0.0.0".parse().unwrap();
    assert_eq!(Nat::ExtIp(ip).advertised_ip(listen), ip);
    assert_eq!(Nat::ListenAddress.advertised_ip(listen), listen);
    assert_eq!(args(&[]).unwrap().nat, Nat::ListenAddress);
    assert_eq!(
        args(&["--nat", "extip:10.0.0.7"]).unwrap().nat,
        Nat::ExtIp(ip)
    );
}

const KEY_A: &str = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
const KEY_B: &str = "b71c71a67e1177ad4e901695e1b4b9ee17ae16c6668d313eac2f96dbcda3f291";

fn key(hex_key: &str) -> [u8; 32] {
    let mut k = [0u8; 32];
    hex::decode_to_slice(hex_key, &mut k).unwrap();
    k
}

/// `--nodekeyhex` never shows the secret: not in `Debug`, not in a parse error.
#[test]
fn nodekeyhex_is_redacted_and_its_errors_do_not_echo_it() {
    let a = args(&["--nodekeyhex", KEY_A]).unwrap();
    assert!(!format!("{a:?}").contains(KEY_A));
    assert_eq!(given_node_key(&a).unwrap(), Some(key(KEY_A)));
    let bad = &KEY_A[..63];
    let e = format!(
        "{:#}",
        given_node_key(&args(&["--nodekeyhex", bad]).unwrap()).unwrap_err()
    );
    assert!(e.contains("--nodekeyhex") && !e.contains(bad), "{e}");
    assert_eq!(given_node_key(&args(&[]).unwrap()).unwrap(), None);
}

#[test]
fn nodekey_flags_exclude_each_other_and_device_key() {
    assert!(args(&["--nodekey", "f", "--nodekeyhex", KEY_A]).is_err());
    assert!(args(&["--nodekey", "f", "--device-key"]).is_err());
    assert!(args(&["--nodekeyhex", KEY_A, "--device-key"]).is_err());
}

#[test]
fn nodekey_file_is_read_in_geths_format() {
    let dir = crate::test_util::temp_dir("nodekey-flag");
    let file = dir.join("key");
    std::fs::write(&file, format!("{KEY_B}\n")).unwrap();
    let a = args(&["--nodekey", file.to_str().unwrap()]).unwrap();
    assert_eq!(given_node_key(&a).unwrap(), Some(key(KEY_B)));
    let missing = args(&["--nodekey", dir.join("absent").to_str().unwrap()]).unwrap();
    assert!(given_node_key(&missing).is_err());
    std::fs::remove_dir_all(dir).unwrap();
}

/// The identity start-up uses when `--nodekey(hex)` gives `given` (what `run_node` does).
fn start_with(dir: &Path, given: &[u8; 32], passphrase: Option<&str>) -> anyhow::Result<[u8; 32]> {
    let store = NodeStore::open(&dir.join(STORE_FILE))?;
    adopt_given_key(dir, &store, given)?;
    let (held, _) = load_identity(dir, &store, passphrase, LIGHT_SCRYPT, false, &mut OsRng)?;
    refuse_other_identity(dir, given, &held)?;
    Ok(held)
}

/// A fresh data dir adopts the given key (plaintext or sealed), keeps it on later starts, and
/// refuses another key with an error naming both identities, never a secret.
#[test]
fn a_given_key_is_adopted_once_and_a_different_one_refused() {
    for passphrase in [None, Some("pw")] {
        let dir = crate::test_util::temp_dir("nodekey-adopt");
        assert_eq!(
            start_with(&dir, &key(KEY_A), passphrase).unwrap(),
            key(KEY_A)
        );
        assert_eq!(
            start_with(&dir, &key(KEY_A), passphrase).unwrap(),
            key(KEY_A)
        );
        let e = format!(
            "{:#}",
            start_with(&dir, &key(KEY_B), passphrase).unwrap_err()
        );
        assert!(e.contains("refusing to replace"), "{e}");
        assert!(!e.contains(KEY_A) && !e.contains(KEY_B), "{e}");
        // Still the first identity.
        assert_eq!(
            start_with(&dir, &key(KEY_A), passphrase).unwrap(),
            key(KEY_A)
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// A data dir whose identity is lost takes back only that identity from --nodekey.
#[test]
fn a_lost_identity_is_restored_only_by_its_own_key() {
    let dir = crate::test_util::temp_dir("nodekey-lost");
    start_with(&dir, &key(KEY_A), None).unwrap();
    std::fs::remove_file(dir.join(NODEKEY_FILE)).unwrap();
    let e = format!("{:#}", start_with(&dir, &key(KEY_B), None).unwrap_err());
    assert!(e.contains("refusing to replace"), "{e}");
    assert!(!dir.join(NODEKEY_FILE).exists());
    assert_eq!(start_with(&dir, &key(KEY_A), None).unwrap(), key(KEY_A));
    std::fs::remove_dir_all(dir).unwrap();
}
