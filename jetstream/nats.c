/*
 * nats.c — the one way qbcdc connects to NATS (jetstream.h, qbc_nats_*): the publisher and
 * every cluster-mode thread use it, so all reconnect alike.
 */
#include <stdlib.h>
#include <string.h>
#include "common.h"
#include "jetstream.h"

int qbc_nats_servers(const char *urls, char ***out)
{
    char **servers = NULL;
    int n = 0;
    char *copy = qbc_strdup(urls != NULL ? urls : ""), *save = NULL;
    for (char *t = strtok_r(copy, ", ", &save); t != NULL; t = strtok_r(NULL, ", ", &save)) {
        servers = qbc_realloc(servers, (size_t)(n + 1) * sizeof(char *));
        servers[n++] = qbc_strdup(t);
    }
    free(copy);
    *out = servers;
    return n;
}

void qbc_nats_servers_free(char **servers, int n)
{
    for (int i = 0; i < n; i++)
        free(servers[i]);
    free(servers);
}

natsStatus qbc_nats_connect(char **servers, int n, int reconnect_wait_ms, natsConnection **out)
{
    natsOptions *opts = NULL;
    *out = NULL;
    natsStatus s = natsOptions_Create(&opts);
    if (s == NATS_OK)
        s = natsOptions_SetServers(opts, (const char **)servers, n);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(opts, -1); /* once connected, nats.c reconnects by itself, for ever */
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(opts, reconnect_wait_ms);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(opts, 2000);
    if (s == NATS_OK)
        s = natsConnection_Connect(out, opts);
    natsOptions_Destroy(opts);
    return s;
}
