/*
 * partition.c — which partition a realm is in, which node should own a partition, and what a
 * node does with a lease in a round: pure functions, no I/O (cluster.h).
 */
#include <string.h>
#include "cluster.h"

#define FNV_OFFSET 14695981039346656037ULL
#define FNV_PRIME 1099511628211ULL

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= FNV_PRIME;
    }
    return h;
}

/* a 64-bit finaliser (splitmix64's): FNV's low bits alone mix poorly for short keys */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

int qbc_cluster_node_id_ok(const char *id)
{
    if (id == NULL || id[0] == '\0' || strlen(id) >= QBC_NODE_ID_MAX)
        return 0;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '-'))
            return 0;
    return 1;
}

unsigned qbc_cluster_partition_of(const char *realm, unsigned partitions)
{
    return (unsigned)(mix(fnv1a(FNV_OFFSET, realm, strlen(realm))) % partitions);
}

int qbc_cluster_preferred(unsigned partition, const char *const *nodes, unsigned n)
{
    int best = -1;
    uint64_t best_score = 0;
    for (unsigned i = 0; i < n; i++) {
        uint64_t h = fnv1a(FNV_OFFSET, nodes[i], strlen(nodes[i]));
        h = fnv1a(h, &(unsigned char){0}, 1);
        unsigned char pb[4] = {(unsigned char)(partition >> 24), (unsigned char)(partition >> 16),
                               (unsigned char)(partition >> 8), (unsigned char)partition};
        uint64_t score = mix(fnv1a(h, pb, sizeof(pb)));
        if (best < 0 || score > best_score || (score == best_score && strcmp(nodes[i], nodes[best]) < 0)) {
            best = (int)i;
            best_score = score;
        }
    }
    return best;
}

qbc_lease_action_t qbc_cluster__decide(int held, const char *owner, const char *me, const char *preferred,
                                       int64_t free_for_ns, int64_t ttl_ns)
{
    int free_ = owner == NULL || owner[0] == '\0';
    if (held) {
        if (!free_ && strcmp(owner, me) != 0)
            return QBC_LEASE_WAIT; /* someone else's now: the caller drops it (lost) */
        if (preferred != NULL && strcmp(preferred, me) != 0)
            return QBC_LEASE_RELEASE; /* a live node is preferred: hand it over */
        return QBC_LEASE_RENEW;
    }
    if (!free_)
        return strcmp(owner, me) == 0 ? QBC_LEASE_TAKE : QBC_LEASE_WAIT; /* ours from before a restart */
    if (preferred != NULL && strcmp(preferred, me) == 0)
        return QBC_LEASE_TAKE;
    if (free_for_ns > ttl_ns) /* its preferred node is not taking it: no partition stays orphaned */
        return QBC_LEASE_TAKE;
    return QBC_LEASE_WAIT;
}

uint64_t qbc_cluster_job_id_base(const char *node_id)
{
    uint64_t h = mix(fnv1a(FNV_OFFSET, node_id, strlen(node_id)));
    return (1 + h % QBC_CLUSTER_JOB_SPACES) * QBC_JOB_ID_SPACE;
}
