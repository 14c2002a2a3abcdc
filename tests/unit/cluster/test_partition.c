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

/* node-scoped job ids (cluster.h qbc_cluster_job_id_base) */
static void job_ids(void)
{
    uint64_t a = qbc_cluster_job_id_base("n1"), b = qbc_cluster_job_id_base("n2");
    ok(a != 0 && a % QBC_JOB_ID_SPACE == 0 && b % QBC_JOB_ID_SPACE == 0, "a base is a non-zero multiple of 2^32");
    ok(a != b, "n1 and n2 have spaces of their own");
    is_int((int)(a == qbc_cluster_job_id_base("n1")), 1, "a node's base is the same at every start");
    is_int((int)qbc_cluster_job_space(a + 17), (int)(a / QBC_JOB_ID_SPACE), "an id's space is its node's");
    is_int((int)qbc_cluster_job_space(17), 0, "ids of one node alone are in space 0, never shared");
    /* the test of the integration suite computes the space in Python: pinned here */
    is_int((int)qbc_cluster_job_space(qbc_cluster_job_id_base("n1")), 415514,
           "n1's space (as test_cluster_admin.py computes it)");
    int top_ok = 1, distinct = 0;
    char id[16];
    uint64_t seen[200];
    for (int i = 0; i < 200; i++) {
        snprintf(id, sizeof(id), "node-%d", i);
        uint64_t sp = qbc_cluster_job_space(qbc_cluster_job_id_base(id));
        top_ok &= sp >= 1 && sp <= QBC_CLUSTER_JOB_SPACES;
        seen[i] = sp;
        int dup = 0;
        for (int k = 0; k < i; k++)
            dup |= seen[k] == sp;
        distinct += !dup;
    }
    ok(top_ok, "every space is in 1 .. 2^20 - 1: ids below 2^52, exact as JSON numbers even in JavaScript");
    is_int(distinct, 200, "200 node ids, 200 spaces");
}

/* what node.<id> holds: the time and the advertised URL (cluster.h qbc_cluster__node_value) */
static void node_values(void)
{
    char v[400], url[QBC_CLUSTER_URL_MAX];
    ok(qbc_cluster__node_value(v, sizeof(v), 1700000000, "http://10.0.0.1:8080") > 0, "a value with a URL");
    is_str(v, "{\"t\":1700000000,\"url\":\"http://10.0.0.1:8080\"}", "JSON: the time and the URL");
    is_int(qbc_cluster__node_value_url(v, strlen(v), url), 0, "its URL read back");
    is_str(url, "http://10.0.0.1:8080", "the same URL");
    qbc_cluster__node_value(v, sizeof(v), 1700000000, NULL);
    is_int(qbc_cluster__node_value_url(v, strlen(v), url), QBC_ENOTFOUND, "no URL advertised: not found");
    is_int(qbc_cluster__node_value_url("1700000000", 10, url), QBC_ENOTFOUND,
           "a node of before (the time alone) has none");
    is_str(url, "", "and url is empty");
    is_int(qbc_cluster__node_value(v, 10, 1700000000, "http://x"), -1, "a value that does not fit: -1");
}

int main(void)
{
    node_ids();
    partitions();
    preferred();
    decide();
    job_ids();
    node_values();
    return done_testing();
}
