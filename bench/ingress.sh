#!/usr/bin/env bash
#
# bench/ingress.sh — qbcdc's webhook ingress against its ceiling, in one run.
#
# Starts bench/ceiling (h2o + signature check + 200, no storage) and
# `qbcdc serve` (fresh data directory) on free loopback ports, then drives both
# with the same bench/loadgen settings:
#   - closed loop, 64 and 16 connections, BENCH_DURATION s each after a warm-up,
#     alternating the servers, BENCH_ROUNDS rounds (the median is reported,
#     because a shared 2-core machine is noisy);
#   - open loop at BENCH_RATE req/s (5,000) over 64 connections, at the end of
#     each round (BENCH_OPEN_ROUNDS of them), median reported likewise.
# Every request has a distinct body and signature (--unique).
# Prints one table and whether the goals were met:
#   qbcdc closed-loop req/s >= 0.80 x ceiling, and qbcdc p99 <= 2 ms at 5,000 req/s.
#
# Environment (all optional):
#   QBCDC_BUILD        meson build directory with qbcdc and bench/ (build)
#   BENCH_DURATION     measured seconds per run (10)
#   BENCH_WARMUP       unrecorded seconds before each run (2)
#   BENCH_ROUNDS       closed-loop rounds (3)
#   BENCH_CONNS        closed-loop connection counts ("64 16")
#   BENCH_RATE         open-loop offered rate, req/s (5000)
#   BENCH_OPEN_CONNS   open-loop connections (64)
#   BENCH_OPEN_ROUNDS  rounds that end with the open-loop runs ($BENCH_ROUNDS)
#   BENCH_SERVERS      which servers to run ("ceiling durable qbcdc"; durable = the
#                      ceiling acking after one pwrite + fdatasync per batch)
#   BENCH_DATA_PARENT  where the temporary data directory is made ($QBCDC_BUILD);
#                      it must be a real disk, not tmpfs, or fsync costs nothing
#   BENCH_CLEAN_CPU    a run is undisturbed if other processes used at most this
#   BENCH_CLEAN_IO_MB  % of the machine (10) and wrote at most this many MB (20)
#
# The load generator and the servers share the same cores; see bench/README.md.
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD=${QBCDC_BUILD:-build}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS_LIST=${BENCH_CONNS:-"64 16"}
RATE=${BENCH_RATE:-5000}
OPEN_CONNS=${BENCH_OPEN_CONNS:-64}
OPEN_ROUNDS=${BENCH_OPEN_ROUNDS:-$ROUNDS}
SERVERS=${BENCH_SERVERS:-"ceiling durable qbcdc"}
DATA_PARENT=${BENCH_DATA_PARENT:-$BUILD}
CLEAN_CPU=${BENCH_CLEAN_CPU:-10}
CLEAN_IO_MB=${BENCH_CLEAN_IO_MB:-20}

LOADGEN=$BUILD/bench/loadgen
CEILING=$BUILD/bench/ceiling
QBCDC=$BUILD/qbcdc
TOKEN="bench-verifier-$RANDOM$RANDOM$RANDOM"

die() {
    echo "ingress.sh: $*" >&2
    exit 1
}

for bin in "$LOADGEN" "$CEILING"; do
    [[ -x $bin ]] || die "$bin not built (ninja -C $BUILD bench/loadgen bench/ceiling)"
done
if [[ " $SERVERS " == *" qbcdc "* ]]; then
    [[ -x $QBCDC ]] || die "$QBCDC not built (ninja -C $BUILD qbcdc)"
fi
command -v curl >/dev/null || die "curl is needed to wait for /healthz"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/qbcdc-bench.XXXXXX")
DATA=$(realpath "$(mktemp -d "$DATA_PARENT/bench-data.XXXXXX")")
RESULTS=$WORK/results
: >"$RESULTS"
declare -A PID PORT

# SIGTERM (graceful) to every server we started, SIGKILL after 5 s.
cleanup() {
    local s i
    for s in "${!PID[@]}"; do
        kill "${PID[$s]}" 2>/dev/null || true
    done
    for s in "${!PID[@]}"; do
        for ((i = 0; i < 50; i++)); do
            kill -0 "${PID[$s]}" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "${PID[$s]}" 2>/dev/null; then
            echo "ingress.sh: $s did not exit 5 s after SIGTERM; killing it" >&2
            kill -KILL "${PID[$s]}" 2>/dev/null || true
        fi
        wait "${PID[$s]}" 2>/dev/null || true
    done
    rm -rf "$WORK" "$DATA"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A loopback port nobody listens on (the server binds it right after; a race
# with another program is possible but would show up as a failed start).
free_port() {
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + RANDOM % 40000))
        if [[ -z $(ss -Htln "sport = :$p" 2>/dev/null) ]]; then
            echo "$p"
            return 0
        fi
    done
    die "no free port found"
}

wait_ready() {
    local name=$1 port=$2 i
    for ((i = 0; i < 100; i++)); do
        kill -0 "${PID[$name]}" 2>/dev/null || {
            tail -n 20 "$WORK/$name.log" >&2
            die "$name exited during start-up"
        }
        if [[ $(curl -s -o /dev/null -m 1 -w '%{http_code}' "http://127.0.0.1:$port/healthz" || true) == 200 ]]; then
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$WORK/$name.log" >&2
    die "$name not ready on 127.0.0.1:$port after 10 s"
}

start_server() {
    local name=$1 port
    port=$(free_port)
    PORT[$name]=$port
    case $name in
    ceiling)
        "$CEILING" --listen "127.0.0.1:$port" --verifier-token "$TOKEN" >"$WORK/$name.log" 2>&1 &
        ;;
    durable)
        # the durable ceiling: the same, but 200 only after a pwrite + fdatasync per batch
        "$CEILING" --listen "127.0.0.1:$port" --verifier-token "$TOKEN" --journal "$DATA/durable.ring" \
            >"$WORK/$name.log" 2>&1 &
        ;;
    qbcdc)
        # QBCDC_SIM=off: no bundled simulator posting its own webhooks during the runs
        QBCDC_LISTEN="127.0.0.1:$port" QBCDC_DATA_DIR="$DATA" QBCDC_WEBHOOK_VERIFIER_TOKENS="$TOKEN" \
            QBCDC_SIM=off "$QBCDC" serve >"$WORK/$name.log" 2>&1 &
        ;;
    *) die "unknown server $name" ;;
    esac
    PID[$name]=$!
    wait_ready "$name" "$port"
    echo "started $name on 127.0.0.1:$port (pid ${PID[$name]})"
}

CRASHED=""

# Waits (at most 10 s) until the machine is at least 90 % idle over half a
# second, so that one server's leftovers (writeback, background work) do not
# land on the next server's run.
settle() {
    local i t0 i0 t1 i1 busy
    for ((i = 0; i < 20; i++)); do
        read -r t0 i0 < <(awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6; exit}' /proc/stat)
        sleep 0.5
        read -r t1 i1 < <(awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6; exit}' /proc/stat)
        busy=$(((100 * ((t1 - t0) - (i1 - i0))) / ((t1 - t0) > 0 ? (t1 - t0) : 1)))
        ((busy <= 10)) && return 0
    done
    echo "   (machine still ${busy}% busy after 10 s; running anyway)"
}

# machine-wide CPU ticks spent in processes (user, nice, system, steal); irq and
# softirq time is left out because loopback TCP for our own traffic lands there
busy_ticks() {
    awk '/^cpu /{print $2+$3+$4+$9; exit}' /proc/stat
}

# user+system CPU ticks of a process, all threads included
proc_ticks() {
    awk '{sub(/^.*\) /, ""); print $12+$13}' "/proc/$1/stat" 2>/dev/null || echo 0
}

# bytes every process has caused to be written to storage, one "PID BYTES" line each
proc_writes() {
    grep -H '^write_bytes:' /proc/[0-9]*/io 2>/dev/null | awk -F'[/: ]+' '{print $3, $NF}' || true
}

# megabytes written by processes other than SKIP_PID between two proc_writes snapshots
other_writes_mb() {
    awk -v skip="$1" 'NR == FNR {before[$1] = $2; next}
        $1 != skip {d = $2 - before[$1]; if (d > 0) sum += d}
        END {printf "%.1f", sum / 1048576}' "$2" "$3"
}

CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)

# run_load SERVER KIND CONNS ROUND [loadgen options...]
# Besides the loadgen's figures, records the CPU the server used (srv_cpu_pct,
# 100 = one core) and the share of the machine used by anything else than the
# server and the load generator during the run (other_cpu_pct): other work on a
# shared machine makes a run unrepresentative. Likewise other_io_mb: what other
# processes wrote to storage meanwhile (another service's fsyncs slow ours).
run_load() {
    local name=$1 kind=$2 conns=$3 round=$4 out line b0 b1 s0 s1 t0 t1 lg extra
    shift 4
    settle
    proc_writes >"$WORK/io0"
    b0=$(busy_ticks)
    s0=$(proc_ticks "${PID[$name]}")
    t0=$EPOCHREALTIME
    out=$("$LOADGEN" --target "127.0.0.1:${PORT[$name]}" --token "$TOKEN" --unique \
        -c "$conns" -d "$DURATION" -w "$WARMUP" --label "$name" "$@") || die "loadgen failed against $name"
    t1=$EPOCHREALTIME
    s1=$(proc_ticks "${PID[$name]}")
    b1=$(busy_ticks)
    proc_writes >"$WORK/io1"
    grep '^loadgen:' <<<"$out" || true
    line=$(grep '^RESULT ' <<<"$out") || die "no RESULT line from loadgen"
    lg=$(sed -n 's/.* cpu_s=\([0-9.]*\).*/\1/p' <<<"$line")
    # a server that died mid-run has no CPU figure (its /proc entry is gone)
    kill -0 "${PID[$name]}" 2>/dev/null || s1=$s0
    extra=$(awk -v t0="$t0" -v t1="$t1" -v b="$((b1 - b0))" -v s="$((s1 - s0))" -v lg="${lg:-0}" \
        -v hz="$CLK_TCK" -v n="$NCPU" 'BEGIN {
            el = t1 - t0; if (el <= 0) el = 1
            other = (b - s) / hz - lg; if (other < 0) other = 0
            printf "srv_cpu_pct=%.0f other_cpu_pct=%.0f", 100 * s / hz / el, 100 * other / (el * n)
        }')
    extra="$extra other_io_mb=$(other_writes_mb "${PID[$name]}" "$WORK/io0" "$WORK/io1")"
    if awk -v e="$extra" -v c="$CLEAN_CPU" -v m="$CLEAN_IO_MB" 'BEGIN {
            split(e, a, /[ =]/); exit !(a[4] + 0 > c || a[6] + 0 > m) }'; then
        echo "   ($extra: DISTURBED by other work, left out of the medians if a clean run exists)"
    else
        echo "   ($extra)"
    fi
    echo "server=$name kind=$kind round=$round ${line#RESULT } $extra" >>"$RESULTS"
    if ! kill -0 "${PID[$name]}" 2>/dev/null; then
        local status=0
        wait "${PID[$name]}" || status=$?
        if ((status == 0)); then
            echo "!! $name exited with status 0 during this run: a graceful stop, so something outside" \
                "this script sent it SIGTERM or SIGINT; last log lines:" >&2
        elif ((status > 128)); then
            echo "!! $name died of signal $((status - 128)) ($(kill -l $((status - 128)) 2>/dev/null || echo '?'))" \
                "during this run; last log lines:" >&2
        else
            echo "!! $name exited with status $status during this run; last log lines:" >&2
        fi
        tail -n 30 "$WORK/$name.log" >&2
        CRASHED="$CRASHED $name"
        unset "PID[$name]"
    fi
}

alive() {
    [[ -n ${PID[$1]:-} ]]
}

echo "== qbcdc ingress benchmark: $(nproc) cores, $(uname -r), build $BUILD"
echo "== data dir $DATA on $(stat -f -c %T "$DATA")"
if [[ $(stat -f -c %T "$DATA") == tmpfs ]]; then
    echo "!! the data directory is on tmpfs: fsync is free there; set BENCH_DATA_PARENT to a real disk" >&2
fi
# How long one synced 4 KiB overwrite takes on the data directory's disk. An
# LMDB commit needs at least two (data pages, then the meta page), so with C
# requests in flight a durable closed loop cannot exceed about C / (2 x this).
dd if=/dev/zero of="$DATA/probe" bs=4k count=256 status=none
sync "$DATA/probe" 2>/dev/null || sync
SYNC_US=$(dd if=/dev/zero of="$DATA/probe" bs=4k count=256 oflag=dsync conv=notrunc 2>&1 |
    awk '/copied/ {for (i = 1; i <= NF; i++) if ($i ~ /^s,?$/) {printf "%.0f", $(i - 1) * 1e6 / 256; exit}}')
rm -f "$DATA/probe"
echo "== disk: a synced 4 KiB overwrite takes ${SYNC_US:-?} us on average"

for s in $SERVERS; do
    start_server "$s"
done

read -r -a SRV <<<"$SERVERS"
for ((round = 1; round <= ROUNDS; round++)); do
    # alternate which server goes first, so neither always gets the cooler machine
    if ((round % 2 == 0)); then
        order=$(printf '%s\n' "${SRV[@]}" | tac | tr '\n' ' ')
    else
        order="${SRV[*]}"
    fi
    for conns in $CONNS_LIST; do
        for s in $order; do
            alive "$s" || continue
            echo "-- round $round/$ROUNDS closed loop, $conns conns, $s"
            run_load "$s" closed "$conns" "$round"
        done
    done
    if ((round <= OPEN_ROUNDS)); then
        for s in $order; do
            alive "$s" || continue
            echo "-- round $round/$ROUNDS open loop $RATE req/s, $OPEN_CONNS conns, $s"
            run_load "$s" open "$OPEN_CONNS" "$round" --rate "$RATE"
        done
    fi
done

if alive qbcdc; then
    echo "== qbcdc /metrics (ingress and store lines)"
    curl -s -m 2 "http://127.0.0.1:${PORT[qbcdc]}/metrics" | grep -v -e '^#' -e '_bucket' |
        grep -iE 'webhook|ingress|store|commit|batch|fsync|quarantin|dup' | head -n 30 || true
    echo "== qbcdc data dir: $(du -sh "$DATA" | cut -f1)"
fi

# ---------------------------------------------------------------- summary
# Per server, mode and connection count: the median over the undisturbed runs
# (other processes used at most CLEAN_CPU % of the machine and wrote at most
# CLEAN_IO_MB meanwhile), or over all runs, marked '*', when none was.
awk -v rate="$RATE" -v crashed="$CRASHED" -v sync_us="${SYNC_US:-0}" -v clean_cpu="$CLEAN_CPU" -v clean_io="$CLEAN_IO_MB" '
function val(k,   i, kv) {
    for (i = 1; i <= NF; i++) {
        split($i, kv, "=")
        if (kv[1] == k)
            return kv[2]
    }
    return ""
}
function median(list,   a, n, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++)
        for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) {
            t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
        }
    if (n == 0)
        return 0
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function add(set, k) {
    rps[set, k] = rps[set, k] " " val("rps")
    p50[set, k] = p50[set, k] " " val("p50_us")
    p99[set, k] = p99[set, k] " " val("p99_us")
    cpu[set, k] = cpu[set, k] " " val("srv_cpu_pct")
    n[set, k]++
    if (val("other_cpu_pct") + 0 > other[set, k])
        other[set, k] = val("other_cpu_pct") + 0
    if (val("other_io_mb") + 0 > otherio[set, k])
        otherio[set, k] = val("other_io_mb") + 0
}
{
    key = val("server") SUBSEP val("kind") SUBSEP val("conns")
    if (!(key in seen)) {
        seen[key] = 1
        order[++nkeys] = key
    }
    bad[key] += val("non200") + val("errors") + val("timeouts") + val("unsent")
    add("all", key)
    if (val("other_cpu_pct") + 0 <= clean_cpu && val("other_io_mb") + 0 <= clean_io)
        add("clean", key)
}
END {
    printf "\n%-8s %-6s %5s %6s %11s %9s %9s %7s %8s %7s %9s\n", "server", "mode", "conns", "runs", "req/s(med)", "p50 us",
        "p99 us", "failed", "srv cpu%", "other%", "other MB"
    for (i = 1; i <= nkeys; i++) {
        k = order[i]
        split(k, f, SUBSEP)
        set = n["clean", k] > 0 ? "clean" : "all"
        if (set == "all")
            disturbed = 1
        med_rps[k] = median(rps[set, k]); med_p99[k] = median(p99[set, k])
        printf "%-8s %-6s %5s %6s %11.0f %9.0f %9.0f %7d %8.0f %7.0f %9.1f\n", f[1], f[2], f[3],
            (n[set, k] + 0) "/" n["all", k] (set == "all" ? "*" : ""), med_rps[k], median(p50[set, k]), med_p99[k], bad[k],
            median(cpu[set, k]), other[set, k], otherio[set, k]
    }
    print ""
    verdict = 1
    have = 0
    for (i = 1; i <= nkeys; i++) {
        k = order[i]
        split(k, f, SUBSEP)
        if (f[1] != "qbcdc" || f[2] != "closed")
            continue
        c = "ceiling" SUBSEP "closed" SUBSEP f[3]
        if (!(c in med_rps) || med_rps[c] == 0)
            continue
        r = med_rps[k] / med_rps[c]
        ok = r >= 0.80 && bad[k] == 0
        have++
        verdict = verdict && ok
        printf "throughput %3s conns: qbcdc/ceiling = %.0f / %.0f = %.2f  (goal >= 0.80%s): %s\n", f[3], med_rps[k], med_rps[c], r,
            bad[k] ? ", and no failed requests" : "", ok ? "MET" : "NOT MET"
    }
    for (i = 1; i <= nkeys; i++) {
        k = order[i]
        split(k, f, SUBSEP)
        if (f[1] != "durable" || f[2] != "closed")
            continue
        c = "ceiling" SUBSEP "closed" SUBSEP f[3]
        q = "qbcdc" SUBSEP "closed" SUBSEP f[3]
        if (!(c in med_rps) || med_rps[c] == 0 || med_rps[k] == 0)
            continue
        printf "durable    %3s conns: durable/ceiling = %.0f / %.0f = %.2f  (what one flush per batch costs here)", f[3],
            med_rps[k], med_rps[c], med_rps[k] / med_rps[c]
        if (q in med_rps)
            printf "; qbcdc/durable = %.2f", med_rps[q] / med_rps[k]
        printf "\n"
    }
    for (i = 1; i <= nkeys; i++) {
        k = order[i]
        split(k, f, SUBSEP)
        if (f[1] != "qbcdc" || f[2] != "open")
            continue
        ok = med_p99[k] <= 2000 && bad[k] == 0 && med_rps[k] >= 0.99 * rate
        have++
        verdict = verdict && ok
        printf "latency at %d req/s: qbcdc p99 = %.0f us, %.0f req/s achieved, %d failed  (goal p99 <= 2000 us, rate held): %s\n",
            rate, med_p99[k], med_rps[k], bad[k], ok ? "MET" : "NOT MET"
    }
    printf "(runs: undisturbed/total; figures are medians over the undisturbed runs, or over all runs (marked *) when none was;\n"
    printf " undisturbed: other processes used <= %d%% of the CPU and wrote <= %d MB; other%%, other MB: the most seen in\n",
        clean_cpu, clean_io
    printf " one of the runs used; failed = non-200 + errors + timeouts + unsent over all runs; srv cpu%%: 100 = one core)\n"
    if (sync_us > 0)
        printf "(disk bound: one synced write of ~%d us per journal commit, so at most ~C / %d us req/s with C connections, e.g. %.0f at 16, %.0f at 64, before LMDB applies share the disk)\n",
            sync_us, sync_us, 16e6 / sync_us, 64e6 / sync_us
    if (disturbed)
        printf "note: some rows had no undisturbed run (other work on this machine); rerun when it is quiet\n"
    if (crashed != "")
        printf "CRASHED during the run:%s\n", crashed
    if (have)
        printf "overall: %s\n", verdict && crashed == "" ? "goals MET" : "goals NOT MET"
}' "$RESULTS"
