use super::*;

#[test]
fn stats_values_plain_and_json() {
    assert_eq!(
        stat_value("stats connections=1 store_commits=42 x=1", "store_commits"),
        Some(42)
    );
    assert_eq!(
        stat_value(
            r#"{"reply":"stats","store_commits":7,"x":1}"#,
            "store_commits"
        ),
        Some(7)
    );
    assert_eq!(
        stat_value(
            r#"{"reply":"stats","driver.store_commits":9}"#,
            "store_commits"
        ),
        Some(9)
    );
    assert_eq!(
        stat_value(r#"{"reply":"stats","x_store_commits":1}"#, "store_commits"),
        None
    );
    assert_eq!(stat_value("stats connections=1", "store_commits"), None);
    assert!(is_stats_line("stats connections=1"));
    assert!(is_stats_line(r#"{"reply":"stats","connections":1}"#));
    assert!(!is_stats_line(r#"{"chat":"bench","text":"stats "}"#));
}

#[test]
fn fsyncs_are_counted_inside_the_window_only() {
    let dir = crate::test_util::temp_dir("bench-strace");
    let trace = dir.join("s.strace");
    std::fs::write(
        &trace,
        "101 100.500000 fdatasync(5) = 0\n\
         101 101.000000 fdatasync(5 <unfinished ...>\n\
         102 101.100000 write(1, \"x\", 1) = 1\n\
         101 101.200000 <... fdatasync resumed>) = 0\n\
         101 102.000000 fsync(7) = 0\n\
         101 103.500000 fdatasync(5) = 0\n\
         garbage\n",
    )
    .unwrap();
    assert_eq!(count_fsyncs(&trace, 101.0, 103.0).unwrap(), 2);
    assert_eq!(count_fsyncs(&trace, 0.0, 1e12).unwrap(), 4);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn enode_keys_and_medians() {
    let key = "ab".repeat(64);
    assert_eq!(
        enode_key(&format!("enode://{key}@127.0.0.1:30303")).unwrap(),
        key
    );
    assert!(enode_key("hello").is_err());
    assert_eq!(median([3.0, 1.0, 2.0].into_iter()), 2.0);
    assert_eq!(median([4.0, 1.0].into_iter()), 2.5);
    assert_eq!(median(std::iter::empty()), 0.0);
}
