/*
 * store_fixture.h — what the store's tests share: a job callback that counts, a
 * wait for n callbacks, and a temporary data directory.
 */
#ifndef QBC_STORE_FIXTURE_H
#define QBC_STORE_FIXTURE_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store.h"
#include "../../tap.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int done_count;

static __attribute__((unused)) void on_commit(qbc_store_job_t *job)
{
    (void)job;
    pthread_mutex_lock(&mu);
    done_count++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/** waits until on_commit has run n times since the last reset_done(). */
static __attribute__((unused)) void wait_done(int n)
{
    pthread_mutex_lock(&mu);
    while (done_count < n)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static __attribute__((unused)) void reset_done(void)
{
    pthread_mutex_lock(&mu);
    done_count = 0;
    pthread_mutex_unlock(&mu);
}

/** a fresh directory under /tmp (free it and rm_rf it when done). */
static __attribute__((unused)) char *make_tmp(void)
{
    char *d = strdup("/tmp/qbcdc-store-test-XXXXXX");
    if (mkdtemp(d) == NULL)
        abort();
    return d;
}

static __attribute__((unused)) void rm_rf(const char *d)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
    if (system(cmd) != 0)
        diag("cleanup failed");
}

#endif
