/*
 * kv.c — what the threads that share state through a JetStream key-value bucket have in
 * common (meter.c, dead.c, jobs.c): connect, open the bucket (created if missing), watch all of it.
 */
#include <stdio.h>
#include <string.h>
#include "cluster_internal.h"
#include "jetstream.h"

int qbc_cluster__kv_open(char **servers, int n_servers, const char *bucket, const char *description, unsigned replicas,
                         qbc_kv_t *out, char *err, size_t errsz)
{
    memset(out, 0, sizeof(*out));
    natsStatus s = qbc_nats_connect(servers, n_servers, 250, &out->nc);
    if (s == NATS_OK)
        s = natsConnection_JetStream(&out->js, out->nc, NULL);
    if (s == NATS_OK) {
        s = js_KeyValue(&out->kv, out->js, bucket);
        if (s == NATS_NOT_FOUND) {
            kvConfig kc;
            kvConfig_Init(&kc);
            kc.Bucket = bucket;
            kc.Description = description;
            kc.History = 1;
            kc.StorageType = js_FileStorage;
            kc.Replicas = (int)(replicas ? replicas : 1);
            s = js_CreateKeyValue(&out->kv, out->js, &kc);
            if (s != NATS_OK) /* another node created it meanwhile */
                s = js_KeyValue(&out->kv, out->js, bucket);
        }
    }
    if (s == NATS_OK)
        s = kvStore_WatchAll(&out->w, out->kv, NULL);
    if (s != NATS_OK) {
        snprintf(err, errsz, "%s bucket: %.100s", bucket, natsStatus_GetText(s));
        qbc_cluster__kv_close(out);
        return -1;
    }
    return 0;
}

void qbc_cluster__kv_close(qbc_kv_t *c)
{
    if (c->w != NULL)
        kvWatcher_Destroy(c->w);
    if (c->kv != NULL)
        kvStore_Destroy(c->kv);
    if (c->js != NULL)
        jsCtx_Destroy(c->js);
    if (c->nc != NULL) {
        natsConnection_Close(c->nc);
        natsConnection_Destroy(c->nc);
    }
    memset(c, 0, sizeof(*c));
}

int qbc_cluster__kv_up(qbc_kv_t *c)
{
    return c->nc != NULL && natsConnection_Status(c->nc) == NATS_CONN_STATUS_CONNECTED;
}
