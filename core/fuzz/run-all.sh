#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60), one after another, and prints a
# Markdown table for docs/fuzzing.md: seconds, total execs, execs/s, corpus size, coverage
# (libFuzzer's final `cov:` edges and `ft:` features) and the result.
#
#   core/fuzz/run-all.sh [SECONDS] [TARGET...]     (needs nightly and `cargo install cargo-fuzz`)
#
# The seeds are written to corpus/<target>/ first (examples/write_seeds.rs); the corpus grows
# there between runs (git-ignored). Logs go to logs/<target>.log; a crash leaves its input in
# artifacts/<target>/ and the script goes on with the next target, then exits 1.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
shift || true
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^hush-core-fuzz$')
fi
cargo run --quiet --locked --no-default-features --example write_seeds -- corpus >/dev/null
# Build every target once (the per-target runs then only link-check).
(cd .. && cargo +nightly fuzz build -O >/dev/null)
bin_dir="target/$(rustc +nightly -vV | sed -n 's/^host: //p')/release"
mkdir -p logs
failed=0
echo "| target | seconds | execs | execs/s | corpus | cov | ft | result |"
echo "|---|---:|---:|---:|---:|---:|---:|---|"
for t in "${targets[@]}"; do
    log="logs/$t.log"
    result=ok
    mkdir -p "artifacts/$t"
    # The binary `cargo fuzz run -O` would run, with the same corpus and artifact paths.
    "$bin_dir/$t" -artifact_prefix="artifacts/$t/" -max_total_time="$seconds" \
        -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 "corpus/$t" >"$log" 2>&1 \
        || { result="CRASH (see $log)"; failed=1; }
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '#[0-9]+.*(cov|ft):' "$log" | tail -1 || true)
    cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
    corpus=$(find "corpus/$t" -type f | wc -l)
    echo "| $t | $seconds | ${execs:-?} | ${rate:-?} | $corpus | ${cov:-?} | ${ft:-?} | $result |"
done
exit "$failed"
