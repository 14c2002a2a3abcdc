/*
 * test_shared.c — the pure parts of what cluster mode shares besides leases: the meter's keys
 * and its sum of the other nodes' counts of a period (meter.c), which CDC watermark a node
 * sweeps from and when it puts its own (realms.c), the dead letters' keys and what a node
 * does with each state of one (dead.c).
 */
#include <stdio.h>
#include <string.h>
#include "cluster.h"
#include "../../tap.h"

#define NS 1000000000LL

static void meter_keys(void)
{
    char key[48], node[QBC_NODE_ID_MAX];
    int64_t start = 0;
    ok(qbc_cluster__meter_key(1764547200 * NS, "node-1", key, sizeof(key)) == 0, "a meter key");
    is_str(key, "1764547200.node-1", "<period_start_s>.<node>");
    ok(qbc_cluster__meter_key_parse(key, &start, node) == 0 && start == 1764547200 * NS && strcmp(node, "node-1") == 0,
       "parsed back");
    ok(qbc_cluster__meter_key(0, "a.b", key, sizeof(key)) != 0, "a node id with a dot makes no key");
    ok(qbc_cluster__meter_key(1764547200 * NS, "n", key, 8) != 0, "nor one too long for the buffer");
    ok(qbc_cluster__meter_key_parse("x.node-1", &start, node) != 0, "a period that is not a number is refused");
    ok(qbc_cluster__meter_key_parse("123", &start, node) != 0, "a key without a node is refused");
    ok(qbc_cluster__meter_key_parse("123.a.b", &start, node) != 0, "a node with a dot is refused");
    ok(qbc_cluster__meter_key_parse(".n", &start, node) != 0, "an empty period is refused");
}

static void meter_sum(void)
{
    const int64_t p = 3600 * NS, prev = 0;
    qbc_meter_node_t e[5];
    memset(e, 0, sizeof(e));
    const char *names[] = {"a", "b", "c", "a", "b"};
    const int64_t periods[] = {p, p, p, prev, prev};
    for (int i = 0; i < 5; i++) {
        snprintf(e[i].node, sizeof(e[i].node), "%s", names[i]);
        e[i].period_start_ns = periods[i];
        e[i].used[QBC_USAGE_LIVE] = 10 * (uint64_t)(i + 1);
        e[i].used[QBC_USAGE_CDC] = (uint64_t)i;
        e[i].inflight = 1;
    }
    qbc_meter_share_t x;
    memset(&x, 0, sizeof(x));
    x.period_start_ns = p;
    qbc_cluster__meter_sum(e, 5, "a", &x);
    is_int((int)x.own[QBC_USAGE_LIVE], 10, "this node's own count of the period (for a lost disk)");
    is_int((int)x.others[QBC_USAGE_LIVE], 20 + 30, "the others' live calls of the period, added up");
    is_int((int)x.others[QBC_USAGE_CDC], 1 + 2, "and their CDC calls");
    is_int((int)x.others_inflight, 2, "and their calls in flight");
    is_int((int)x.n_others, 2, "two other nodes");
    x.period_start_ns = prev;
    qbc_cluster__meter_sum(e, 5, "c", &x);
    is_int((int)x.others[QBC_USAGE_LIVE], 40 + 50, "another period: only its entries");
    is_int((int)x.own[QBC_USAGE_LIVE], 0, "c counted nothing then");
    x.period_start_ns = p + 1; /* keys carry whole seconds */
    qbc_cluster__meter_sum(e, 5, "a", &x);
    is_int((int)x.n_others, 2, "periods compare at the keys' grain (seconds)");
}

static void dead_keys(void)
{
    char key[QBC_DEAD_KEY_MAX], node[QBC_NODE_ID_MAX], tag[9];
    uint64_t id = 0;
    ok(qbc_cluster__dead_key("q1", "0eefce62", 17, key, sizeof(key)) == 0, "a dead letter key");
    is_str(key, "q1.0eefce62.17", "<node>.<store>.<id>");
    ok(qbc_cluster__dead_key_parse(key, node, tag, &id) == 0 && strcmp(node, "q1") == 0 &&
           strcmp(tag, "0eefce62") == 0 && id == 17,
       "parsed back");
    ok(qbc_cluster__dead_key("q1", "0EEFCE62", 1, key, sizeof(key)) != 0, "a store tag is lowercase hex");
    ok(qbc_cluster__dead_key("q1", "0eefce6", 1, key, sizeof(key)) != 0, "of 8 digits");
    ok(qbc_cluster__dead_key_parse("17", node, tag, &id) != 0, "a bare number is not a cluster id");
    ok(qbc_cluster__dead_key_parse("q1.0eefce62.", node, tag, &id) != 0, "an empty id is refused");
    ok(qbc_cluster__dead_key_parse("q1.0eefce62.1x", node, tag, &id) != 0, "an id that is not a number is refused");
    ok(qbc_cluster__dead_key_parse("q 1.0eefce62.1", node, tag, &id) != 0, "a bad node is refused");
    ok(qbc_cluster__dead_key_parse("q1.zzzzzzzz.1", node, tag, &id) != 0, "a bad store tag is refused");
}

static void dead_decide(void)
{
    qbc_cluster_dead_t d;
    memset(&d, 0, sizeof(d));
    snprintf(d.node, sizeof(d.node), "q1");
    snprintf(d.store_tag, sizeof(d.store_tag), "aaaaaaaa");
    int64_t now = 1000 * NS;
    d.state = QBC_DEAD_DEAD;
    is_int(qbc_cluster__dead_decide(&d, "q1", "aaaaaaaa", 1, now), QBC_DEAD_WAIT, "a dead letter waits for a retry");
    d.state = QBC_DEAD_RETRY;
    is_int(qbc_cluster__dead_decide(&d, "q2", "bbbbbbbb", 0, now), QBC_DEAD_WAIT,
           "a retry is not for a node that does not own the realm");
    is_int(qbc_cluster__dead_decide(&d, "q2", "bbbbbbbb", 1, now), QBC_DEAD_IMPORT,
           "the realm's owner imports another node's");
    is_int(qbc_cluster__dead_decide(&d, "q1", "aaaaaaaa", 1, now), QBC_DEAD_REDRIVE_LOCAL,
           "its home, owning the realm, redrives its own");
    is_int(qbc_cluster__dead_decide(&d, "q1", "cccccccc", 1, now), QBC_DEAD_IMPORT,
           "its node on a new disk imports it (the old store is gone)");
    d.state = QBC_DEAD_REDRIVEN;
    d.state_ns = now - NS;
    is_int(qbc_cluster__dead_decide(&d, "q1", "aaaaaaaa", 0, now), QBC_DEAD_DROP_LOCAL,
           "redriven: its home drops its copy");
    is_int(qbc_cluster__dead_decide(&d, "q1", "cccccccc", 0, now), QBC_DEAD_PURGE,
           "its node on a new disk purges the key");
    is_int(qbc_cluster__dead_decide(&d, "q2", "bbbbbbbb", 1, now), QBC_DEAD_WAIT, "another node leaves it to its home");
    d.state_ns = now - 3600 * NS;
    is_int(qbc_cluster__dead_decide(&d, "q2", "bbbbbbbb", 0, now), QBC_DEAD_PURGE,
           "unless its home has not come for it in 10 minutes");
}

static void watermarks(void)
{
    is_int((int)qbc_cluster__watermark_start(1, 500, 900), 500, "a node with its own watermark sweeps from it");
    is_int((int)qbc_cluster__watermark_start(1, 0, 900), 900, "one that never swept the realm, from the bucket's");
    is_int((int)qbc_cluster__watermark_start(0, 0, 900), 900, "so does one new to the realm");
    is_int((int)qbc_cluster__watermark_start(0, 0, 0), 0, "none anywhere: none");
    int64_t due = -1, now = 100 * NS;
    ok(qbc_cluster__watermark_put_due(0, 20, 10, 0, now, 0, &due) && due == 0, "swept further, never put: put now");
    ok(!qbc_cluster__watermark_put_due(0, 20, 10, now - NS, now, 0, &due) && due == now + 4 * NS,
       "put a second ago: due 5 s after that put");
    ok(qbc_cluster__watermark_put_due(0, 20, 10, now - 5 * NS, now, 0, &due), "5 s later: put");
    ok(qbc_cluster__watermark_put_due(0, 20, 10, now - NS, now, 1, &due), "at stop: put whatever the last put");
    ok(!qbc_cluster__watermark_put_due(0, 10, 10, 0, now, 1, &due) && due == 0, "not ahead of the bucket: nothing");
    ok(!qbc_cluster__watermark_put_due(0, 5, 10, 0, now, 1, &due), "behind it: nothing (the bucket never goes back)");
    ok(!qbc_cluster__watermark_put_due(-1, 20, 10, 0, now, 1, &due),
       "the bucket's tokens are newer (an import is under way): nothing");
    ok(!qbc_cluster__watermark_put_due(1, 20, 10, 0, now, 0, &due),
       "ours are newer: not this way (the whole entry is put, watermark included)");
}

int main(void)
{
    printf("# the shared meter\n");
    meter_keys();
    meter_sum();
    printf("# CDC watermarks\n");
    watermarks();
    printf("# dead letters\n");
    dead_keys();
    dead_decide();
    return done_testing();
}
