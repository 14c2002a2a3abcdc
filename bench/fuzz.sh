#!/usr/bin/env bash
# bench/fuzz.sh — runs the libFuzzer targets for longer than CI does and prints one table.
#
# usage: bench/fuzz.sh [--execs N] [SECONDS] [TARGET...]
#
#   bench/fuzz.sh 600                          # every target for ten minutes
#   bench/fuzz.sh --execs 10000000             # every target until 10 M executions
#   bench/fuzz.sh --execs 10000000 1500        # ... or 1500 s, whichever comes first
#   bench/fuzz.sh 60 fuzz_oauth fuzz_payload   # only these
#
# Builds build-fuzz through fuzz/run.sh --build (QBCDC_FUZZ_BUILD for another dir), copies
# the binaries and each target's seed corpus (fuzz/corpus/<target>/) to a temp dir
# (QBCDC_FUZZ_OUT to choose it) and runs the targets one after the other, so that each gets
# one core. Progress goes to stderr, with the log of the target running (tail -f it); the
# table goes to stdout: execs, execs/s, libFuzzer's final cov: and ft:, the corpus it ended
# with (units/bytes), and crashes (0, or the crash file, kept). The temp dir is removed when
# nothing crashed and QBCDC_FUZZ_OUT is unset. Exit status: 0, 1 if a target crashed or
# did not run, 2 on a usage error. A benchmark, not a test: CI runs fuzz/run.sh instead.
set -uo pipefail
cd "$(dirname "$0")/.."

usage()
{
    echo "usage: bench/fuzz.sh [--execs N] [SECONDS] [TARGET...]" >&2
    echo "  SECONDS per target (default 60; with --execs a cap, default none); TARGET: one of" >&2
    bash fuzz/run.sh --list | sed 's/^/    /' >&2
}

execs=
secs=
names=()
while [ $# -gt 0 ]; do
    case "$1" in
    -h | --help)
        usage
        exit 0
        ;;
    --execs)
        execs=${2:-}
        shift 2 || { usage; exit 2; }
        ;;
    --execs=*)
        execs=${1#--execs=}
        shift
        ;;
    -*)
        usage
        exit 2
        ;;
    *[!0-9]*)
        names+=("$1")
        shift
        ;;
    *)
        secs=$1
        shift
        ;;
    esac
done
case "$execs" in *[!0-9]*) usage; exit 2 ;; esac
[ -n "$execs" ] || secs=${secs:-60}

all=($(bash fuzz/run.sh --list))
[ ${#names[@]} -gt 0 ] || names=("${all[@]}")
for t in "${names[@]}"; do
    case " ${all[*]} " in
    *" $t "*) ;;
    *)
        echo "bench/fuzz.sh: no target $t" >&2
        usage
        exit 2
        ;;
    esac
done

build=${QBCDC_FUZZ_BUILD:-build-fuzz}
bash fuzz/run.sh --build || exit 1
out=${QBCDC_FUZZ_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/qbcdc-fuzzbench.XXXXXX")}
mkdir -p "$out/bin"
# a copy, so that a rebuild during a long run does not change the binary under test
for t in "${names[@]}"; do
    cp "$build/fuzz/$t" "$out/bin/$t" || exit 1
done

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1
limits=(-max_total_time="${secs:-0}")
[ -z "$execs" ] || limits+=(-runs="$execs")
echo "# ${execs:+$execs execs}${execs:+${secs:+ or }}${secs:+$secs s} per target; work dir $out" >&2

rows=()
failed=0
for t in "${names[@]}"; do
    mkdir -p "$out/$t/corpus"
    cp fuzz/corpus/"$t"/* "$out/$t/corpus/"
    echo "# $(date +%T) $t: running (log: $out/$t.log)" >&2
    # a backstop only: libFuzzer stops on its own
    backstop=()
    [ -z "$secs" ] || backstop=(timeout -k 10 $((secs + 120)))
    "${backstop[@]}" "$out/bin/$t" "${limits[@]}" -max_len=65536 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$out/$t/" "$out/$t/corpus" >"$out/$t.log" 2>&1
    rc=$?
    log=$out/$t.log
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    [ -n "$runs" ] || runs=$(sed -n 's/^#\([0-9][0-9]*\).*/\1/p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+.* cov: ' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$last")
    crash=$(find "$out/$t" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
        -o -name 'oom-*' \) | head -1)
    if [ -n "$crash" ]; then
        failed=1
        crashes=$crash
    elif [ "$rc" -ne 0 ] || [ -z "$runs" ]; then
        failed=1
        crashes="exit $rc, see $log"
    else
        crashes=0
    fi
    echo "# $(date +%T) $t: ${runs:-?} execs, ${rate:-?}/s, cov ${cov:-?}, ft ${ft:-?}, crashes: $crashes" >&2
    rows+=("$(printf '%-16s %12s %9s %7s %7s %15s  %s' "$t" "${runs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" \
        "${corp:-?}" "$crashes")")
done

printf '%-16s %12s %9s %7s %7s %15s  %s\n' target execs execs/s cov ft corpus crashes
printf '%s\n' "${rows[@]}"
if [ "$failed" -eq 0 ] && [ -z "${QBCDC_FUZZ_OUT:-}" ]; then
    rm -rf "$out"
else
    echo "# corpora, logs and crash files kept in $out"
fi
exit "$failed"
