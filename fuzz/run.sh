#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer's coverage instrumentation on the
# stable toolchain (what `cargo fuzz run -s none` does) and runs each for a
# bounded time. Usage: fuzz/run.sh [SECONDS_PER_TARGET] (default 30).
# Exits non-zero if a target crashes; the crashing input is left in
# fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-30}"
triple="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTFLAGS="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
cargo build --release --target "$triple" --bins
for t in control data pmdk poolset header; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "fuzzing $t for ${secs}s"
    "target/$triple/release/$t" -max_total_time="$secs" -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" "corpus/$t"
done
