#!/usr/bin/env bash
#
# deploy/cluster-local.sh — a qbcdc cluster on this machine's loopback, to try cluster mode:
# three nats-servers (one JetStream cluster, replicas 3), three `qbcdc serve` nodes and qbosim
# standing in for Intuit, its webhooks spread round-robin over the three nodes.
#
#   deploy/cluster-local.sh            start everything, print the addresses, wait for Ctrl-C
#   QBCDC_BUILD=build-asan deploy/cluster-local.sh
#
# Everything lives under a fresh directory (printed; CLUSTER_DIR to choose it) and is stopped
# by PID on Ctrl-C or when the script is killed. Ports: nats 14222-14224 (routes 16222-16224),
# qbcdc 18081-18083, qbosim 19090 (CLUSTER_PORT_BASE shifts them all).
#
# Try:  curl -s -H 'Authorization: Bearer admin' http://127.0.0.1:18081/admin/cluster
#       curl -s -X POST 'http://127.0.0.1:19090/sim/mutate?n=50'      (changes, as webhooks)
#       kill -9 <a node's PID>     (its partitions are taken over after QBCDC_LEASE_TTL, 10 s)
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD=${QBCDC_BUILD:-build}
QBCDC=$BUILD/qbcdc
QBOSIM=$BUILD/qbosim
SHIFT=${CLUSTER_PORT_BASE:-0}
DIR=${CLUSTER_DIR:-$(mktemp -d /tmp/qbcdc-cluster.XXXXXX)}
ADMIN=admin
VERIFIER=cluster-verifier-token
CLIENT_ID=cluster-client
CLIENT_SECRET=cluster-secret

for bin in "$QBCDC" "$QBOSIM"; do
    [[ -x $bin ]] || { echo "cluster-local.sh: $bin is not built (meson setup $BUILD && ninja -C $BUILD)" >&2; exit 1; }
done
command -v nats-server >/dev/null || { echo "cluster-local.sh: nats-server is not installed (apt-get install nats-server)" >&2; exit 1; }

PIDS=()
stop_all() {
    trap - EXIT INT TERM
    echo
    echo "stopping ${#PIDS[@]} processes"
    # the nodes first (they hand their partitions over through NATS), then qbosim, then NATS
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill "${PIDS[$i]}" 2>/dev/null || true
        [[ $i -ge 3 ]] || wait "${PIDS[$i]}" 2>/dev/null || true
        [[ $i -ne 4 ]] || for pid in "${PIDS[@]:4}"; do wait "$pid" 2>/dev/null || true; done
    done
    echo "logs and data stay in $DIR"
}
trap stop_all EXIT INT TERM

nats_port() { echo $((14221 + $1 + SHIFT)); }
route_port() { echo $((16221 + $1 + SHIFT)); }
node_port() { echo $((18080 + $1 + SHIFT)); }
SIM_PORT=$((19090 + SHIFT))

routes=""
for i in 1 2 3; do routes="$routes${routes:+,}nats://127.0.0.1:$(route_port "$i")"; done
urls=""
for i in 1 2 3; do urls="$urls${urls:+,}nats://127.0.0.1:$(nats_port "$i")"; done
hooks=""
for i in 1 2 3; do hooks="$hooks${hooks:+,}http://127.0.0.1:$(node_port "$i")/webhooks/intuit"; done

wait_port() { # wait_port PORT: up to 15 s
    for _ in $(seq 150); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "cluster-local.sh: nothing listens on port $1; see the logs in $DIR" >&2
    exit 1
}

for i in 1 2 3; do
    mkdir -p "$DIR/nats$i"
    nats-server -a 127.0.0.1 -p "$(nats_port "$i")" -js -sd "$DIR/nats$i" --server_name "nats$i" \
        --cluster_name qbcdc-local --cluster "nats://127.0.0.1:$(route_port "$i")" --routes "$routes" \
        >"$DIR/nats$i.log" 2>&1 &
    PIDS+=($!)
done
for i in 1 2 3; do wait_port "$(nats_port "$i")"; done

"$QBOSIM" --listen "127.0.0.1:$SIM_PORT" --realms 6 --client-id "$CLIENT_ID" --client-secret "$CLIENT_SECRET" \
    --verifier-token "$VERIFIER" --webhook-url "$hooks" >"$DIR/qbosim.log" 2>&1 &
PIDS+=($!)
wait_port "$SIM_PORT"

# one master key for every node: the tokens are encrypted with it
head -c 32 /dev/urandom >"$DIR/master.key"
chmod 600 "$DIR/master.key"
for i in 1 2 3; do
    mkdir -p "$DIR/node$i"
    QBCDC_LISTEN="127.0.0.1:$(node_port "$i")" QBCDC_DATA_DIR="$DIR/node$i" QBCDC_SIM=off \
        QBCDC_ADVERTISE_URL="http://127.0.0.1:$(node_port "$i")" QBCDC_NODE_ID="node$i" QBCDC_NATS_URL="$urls" QBCDC_NATS_REPLICAS=3 \
        QBCDC_MASTER_KEY_FILE="$DIR/master.key" QBCDC_ADMIN_TOKEN="$ADMIN" QBCDC_FEED_TOKEN=feed \
        QBCDC_WEBHOOK_VERIFIER_TOKENS="$VERIFIER" QBCDC_CLIENT_ID="$CLIENT_ID" QBCDC_CLIENT_SECRET="$CLIENT_SECRET" \
        QBCDC_API_BASE="http://127.0.0.1:$SIM_PORT" QBCDC_OAUTH_TOKEN_URL="http://127.0.0.1:$SIM_PORT/oauth2/v1/tokens/bearer" \
        QBCDC_CDC_ENTITIES=Customer,Vendor,Item,Account,Invoice,Payment,Bill,JournalEntry \
        "$QBCDC" serve >"$DIR/node$i.log" 2>&1 &
    PIDS+=($!)
done
for i in 1 2 3; do wait_port "$(node_port "$i")"; done

# the companies registered on node1: the others get them through the bucket qbcdc_realms
realms=$(curl -s "http://127.0.0.1:$SIM_PORT/sim/realms")
for realm in $(python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)))' <<<"$realms"); do
    rt=$(python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]]["refresh_token"])' "$realm" <<<"$realms")
    curl -s -o /dev/null -X PUT -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
        -d "{\"refresh_token\":\"$rt\"}" "http://127.0.0.1:$(node_port 1)/admin/realms/$realm/tokens"
done

echo "qbcdc cluster on loopback (data and logs in $DIR)"
for i in 1 2 3; do
    echo "  node$i   http://127.0.0.1:$(node_port "$i")   pid ${PIDS[$((3 + i))]}   nats nats://127.0.0.1:$(nats_port "$i") pid ${PIDS[$((i - 1))]}"
done
echo "  qbosim  http://127.0.0.1:$SIM_PORT   pid ${PIDS[3]}   (POST /sim/mutate?n=50 makes changes)"
echo "  admin token: $ADMIN   feed token: feed"
echo "Ctrl-C stops everything."
wait
