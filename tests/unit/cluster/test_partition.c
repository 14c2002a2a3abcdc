/*
 * test_partition.c — cluster/partition.c: node ids, the partition of a realm, the preferred
 * node of a partition (rendezvous hashing) and the lease decision table.
 */
#include <stdio.h>
#include <string.h>
#include "cluster.h"
#include "../../tap.h"

#define P 256

static void node_ids(void)
{
    ok(qbc_cluster_node_id_ok("node-1"), "node-1 is a node id");
    ok(qbc_cluster_node_id_ok("A_b-9"), "letters, digits, _ and -");
    ok(!qbc_cluster_node_id_ok(""), "empty is not");
    ok(!qbc_cluster_node_id_ok(NULL), "NULL is not");
    ok(!qbc_cluster_node_id_ok("a.b"), "a dot is not (it would split a KV key)");
    ok(!qbc_cluster_node_id_ok("a b"), "a space is not");
    ok(!qbc_cluster_node_id_ok("a*"), "a wildcard is not");
    char long_id[80];
    memset(long_id, 'x', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    ok(!qbc_cluster_node_id_ok(long_id), "79 bytes is too long");
    long_id[QBC_NODE_ID_MAX - 1] = '\0';
    ok(qbc_cluster_node_id_ok(long_id), "63 bytes is not");
}

static void partitions(void)
{
    unsigned count[32] = {0};
    char realm[32];
    int in_range = 1, stable = 1;
    for (int i = 0; i < 32000; i++) {
        snprintf(realm, sizeof(realm), "%lld", 9130350000000000LL + (long long)i * 7919);
        unsigned p = qbc_cluster_partition_of(realm, 32);
        in_range &= p < 32;
        stable &= p == qbc_cluster_partition_of(realm, 32);
        if (p < 32)
            count[p]++;
    }
    ok(in_range, "32,000 realms: every partition below 32");
    ok(stable, "the same realm, the same partition");
    unsigned lo = ~0u, hi = 0;
    for (int p = 0; p < 32; p++) {
        lo = count[p] < lo ? count[p] : lo;
        hi = count[p] > hi ? count[p] : hi;
    }
    char d[96];
    snprintf(d, sizeof(d), "realms per partition: %u to %u (mean 1000)", lo, hi);
    diag(d);
    ok(lo >= 850 && hi <= 1150, "spread within 15% of the mean");
    is_int((int)qbc_cluster_partition_of("123146096291789", 1), 0, "one partition: always 0");
    /* pinned: a change would move every realm of a running cluster to another partition */
    is_int((int)qbc_cluster_partition_of("9130350000000001", 32), 30, "pinned: 9130350000000001 is in 30 of 32");
    is_int((int)qbc_cluster_partition_of("123146096291789", 32), 13, "pinned: 123146096291789 is in 13 of 32");
    is_int((int)qbc_cluster_partition_of("4620816365171082580", 1024), 838, "pinned: a long id in 838 of 1024");
}

static void preferred(void)
{
    const char *three[] = {"q1", "q2", "q3"}, *two[] = {"q1", "q3"}, *four[] = {"q1", "q2", "q3", "q4"};
    int who3[P], share[3] = {0};
    for (unsigned p = 0; p < P; p++) {
        who3[p] = qbc_cluster_preferred(p, three, 3);
        if (who3[p] >= 0)
            share[who3[p]]++;
    }
    char d[96];
    snprintf(d, sizeof(d), "%d partitions over 3 nodes: %d, %d, %d", P, share[0], share[1], share[2]);
    diag(d);
    ok(share[0] > P / 5 && share[1] > P / 5 && share[2] > P / 5, "each of 3 nodes is preferred for over a fifth");
    is_int(qbc_cluster_preferred(0, three, 0), -1, "no node: -1");
    is_int(qbc_cluster_preferred(0, three, 3), 1, "pinned: partition 0 prefers q2 of q1..q3");
    is_int(qbc_cluster_preferred(7, three, 3), 0, "pinned: partition 7 prefers q1");
    const char *rev[] = {"q3", "q2", "q1"};
    int order_free = 1;
    for (unsigned p = 0; p < P; p++)
        order_free &= strcmp(rev[qbc_cluster_preferred(p, rev, 3)], three[who3[p]]) == 0;
    ok(order_free, "the list's order does not matter");

    int only_theirs = 1, moved = 0;
    for (unsigned p = 0; p < P; p++) {
        const char *now = two[qbc_cluster_preferred(p, two, 2)], *before = three[who3[p]];
        if (strcmp(now, before) != 0) {
            moved++;
            only_theirs &= strcmp(before, "q2") == 0;
        }
    }
    ok(only_theirs, "q2 leaves: only the partitions q2 was preferred for move");
    is_int(moved, share[1], "and all of them");

    int only_to_new = 1, gained = 0;
    for (unsigned p = 0; p < P; p++) {
        const char *now = four[qbc_cluster_preferred(p, four, 4)], *before = three[who3[p]];
        if (strcmp(now, before) != 0) {
            gained++;
            only_to_new &= strcmp(now, "q4") == 0;
        }
    }
    ok(only_to_new, "q4 joins: partitions move only to q4");
    ok(gained > P / 8 && gained < P / 2, "about a quarter of them");
}

static void decide(void)
{
    const int64_t ttl = 10000000000LL;
    is_int(qbc_cluster__decide(0, "", "q1", "q1", 0, ttl), QBC_LEASE_TAKE, "free, preferred: take");
    is_int(qbc_cluster__decide(0, NULL, "q1", "q1", 0, ttl), QBC_LEASE_TAKE, "free (NULL), preferred: take");
    is_int(qbc_cluster__decide(0, "", "q1", "q2", 0, ttl), QBC_LEASE_WAIT, "free, another preferred: wait for it");
    is_int(qbc_cluster__decide(0, "", "q1", "q2", ttl + 1, ttl), QBC_LEASE_TAKE,
           "free for longer than a TTL: take it anyway (its preferred node is not)");
    is_int(qbc_cluster__decide(0, "", "q1", NULL, 0, ttl), QBC_LEASE_WAIT, "free, no live node known: wait");
    is_int(qbc_cluster__decide(0, "q2", "q1", "q1", 0, ttl), QBC_LEASE_WAIT,
           "held by another though we are preferred: wait for it to hand over or lapse");
    is_int(qbc_cluster__decide(0, "q1", "q1", "q2", 0, ttl), QBC_LEASE_TAKE,
           "ours from before a restart: adopt it (then hand it over if another is preferred)");
    is_int(qbc_cluster__decide(1, "q1", "q1", "q1", 0, ttl), QBC_LEASE_RENEW, "held, preferred: renew");
    is_int(qbc_cluster__decide(1, "q1", "q1", NULL, 0, ttl), QBC_LEASE_RENEW, "held, no list: renew");
    is_int(qbc_cluster__decide(1, "q1", "q1", "q2", 0, ttl), QBC_LEASE_RELEASE, "held, another preferred: release");
    is_int(qbc_cluster__decide(1, "q3", "q1", "q1", 0, ttl), QBC_LEASE_WAIT, "held but the key says q3: not ours");
}

int main(void)
{
    node_ids();
    partitions();
    preferred();
    decide();
    return done_testing();
}
