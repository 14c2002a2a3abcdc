#!/usr/bin/env bash
# fuzz/run.sh [seconds-per-target] — builds the libFuzzer targets and runs each one.
# fuzz/run.sh --build — only configures and builds them; --list prints the targets
# (bench/fuzz.sh uses both).
#
# Configures ./build-fuzz (clang, ASan + UBSan, -Dfuzz=true) if needed, builds only the
# fuzz targets, then runs every target for the given time (default 20 s) on a copy of
# its seed corpus, fuzz/corpus/<target>/. Nothing is written into the repository: the
# corpus copies, logs and any crash files go to a temp dir (QBCDC_FUZZ_OUT to choose
# it), which is removed when every target passed and kept (and named) otherwise.
# Prints TAP, one line per target, so that prove can run it (tests/fuzz/test_fuzz.sh).
set -uo pipefail
cd "$(dirname "$0")/.."

secs=${1:-20}
build=${QBCDC_FUZZ_BUILD:-build-fuzz}
targets=(fuzz_payload fuzz_signature fuzz_json_scan fuzz_qbo_answer fuzz_oauth fuzz_journal fuzz_http_query fuzz_delivery fuzz_feed_record fuzz_datafile)

# configures $build if needed and builds the targets; the log goes to $1
build_targets()
{
    if [ ! -f "$build/build.ninja" ]; then
        CC=clang meson setup "$build" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false >"$1" 2>&1
    fi
    ninja -C "$build" "${targets[@]/#/fuzz/}" >>"$1" 2>&1
}

if [ "$secs" = --list ]; then
    printf '%s\n' "${targets[@]}"
    exit 0
fi
if [ "$secs" = --build ]; then
    command -v clang >/dev/null 2>&1 || { echo "fuzz/run.sh: clang is not installed" >&2; exit 1; }
    log=$(mktemp "${TMPDIR:-/tmp}/qbcdc-fuzz-build.XXXXXX")
    if ! build_targets "$log"; then
        tail -30 "$log" >&2
        echo "fuzz/run.sh: build failed (log: $log)" >&2
        exit 1
    fi
    rm -f "$log"
    exit 0
fi
case "$secs" in
'' | *[!0-9]*)
    echo "usage: fuzz/run.sh [seconds-per-target] | --build | --list" >&2
    exit 2
    ;;
esac
if ! command -v clang >/dev/null 2>&1; then
    echo "1..0 # SKIP clang is not installed (apt-get install clang libclang-rt-14-dev)"
    exit 0
fi

out=${QBCDC_FUZZ_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/qbcdc-fuzz.XXXXXX")}
mkdir -p "$out"
echo "1..${#targets[@]}"

if ! build_targets "$out/build.log"; then
    sed 's/^/# /' "$out/build.log" | tail -30
    for i in "${!targets[@]}"; do
        echo "not ok $((i + 1)) - ${targets[$i]}: build failed (log: $out/build.log)"
    done
    exit 1
fi

# UBSan stops at the first report, so libFuzzer keeps the input as a crash file
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1
failed=0
for i in "${!targets[@]}"; do
    t=${targets[$i]}
    mkdir -p "$out/$t/corpus"
    cp fuzz/corpus/"$t"/* "$out/$t/corpus/"
    # libFuzzer ends on its own after -max_total_time; the timeout is a backstop
    timeout -k 5 $((secs + 60)) "$build/fuzz/$t" -max_total_time="$secs" -max_len=65536 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$out/$t/" "$out/$t/corpus" >"$out/$t.log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$t.log" | tail -1)
    crash=$(find "$out/$t" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
        -o -name 'oom-*' \) | head -1)
    if [ "$rc" -eq 0 ] && [ -z "$crash" ] && [ -n "$runs" ]; then
        took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$out/$t.log" | tail -1)
        took=${took:-$secs}
        echo "ok $((i + 1)) - $t: $runs runs in ${took} s ($((runs / (took > 0 ? took : 1)))/s), no crash"
    else
        failed=1
        echo "not ok $((i + 1)) - $t: exit $rc, ${crash:-no crash file} (log: $out/$t.log)"
        grep -E 'ERROR|SUMMARY|runtime error|invariant broken' "$out/$t.log" | head -5 | sed 's/^/# /'
    fi
done

if [ "$failed" -eq 0 ] && [ -z "${QBCDC_FUZZ_OUT:-}" ]; then
    rm -rf "$out"
else
    echo "# corpora, logs and crash files kept in $out"
fi
exit "$failed"
