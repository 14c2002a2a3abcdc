/*
 * cluster_internal.h — what the cluster's threads share and nothing outside needs.
 */
#ifndef QBC_CLUSTER_INTERNAL_H
#define QBC_CLUSTER_INTERNAL_H

#include <stddef.h>
#include <nats/nats.h>
#include "cluster.h"

/** a connection to one key-value bucket, watched whole */
typedef struct st_qbc_kv_t {
    natsConnection *nc;
    jsCtx *js;
    kvStore *kv;
    kvWatcher *w; /**< every key: first the current entries, then a NULL entry, then the changes */
} qbc_kv_t;

/**
 * connects (blocking: from the caller's own thread), opens bucket (created with history 1 and
 * the given replicas when missing) and watches all of it.
 * @return 0, or -1 with err set (out is then all NULL)
 */
int qbc_cluster__kv_open(char **servers, int n_servers, const char *bucket, const char *description, unsigned replicas,
                         qbc_kv_t *out, char *err, size_t errsz);

/** closes what qbc_cluster__kv_open opened; an all-NULL c is a no-op */
void qbc_cluster__kv_close(qbc_kv_t *c);

/** 1 when the connection is up now (nats.c reconnects by itself; this says whether it is) */
int qbc_cluster__kv_up(qbc_kv_t *c);

#endif
