/*
 * worker.c — a thread of one's own that stops when asked (common.h qbc_worker_*).
 */
#include <errno.h>
#include <pthread.h>
#include "common.h"

void qbc_worker_init(qbc_worker_t *w)
{
    pthread_mutex_init(&w->mu, NULL);
    if (qbc_cond_init_mono(&w->cv) != 0)
        qbc_fatal("cannot make a monotonic condition variable");
    w->stop = w->started = 0;
}

int qbc_worker_start(qbc_worker_t *w, void *(*fn)(void *), void *arg)
{
    int rc = pthread_create(&w->thread, NULL, fn, arg);
    if (rc != 0)
        return -rc;
    w->started = 1;
    return 0;
}

int qbc_worker_stopping(qbc_worker_t *w)
{
    pthread_mutex_lock(&w->mu);
    int stop = w->stop;
    pthread_mutex_unlock(&w->mu);
    return stop;
}

int qbc_worker_nap(qbc_worker_t *w, int64_t ms)
{
    pthread_mutex_lock(&w->mu);
    if (!w->stop && ms > 0)
        qbc_cond_wait_until(&w->cv, &w->mu, qbc_mono_ns() + ms * 1000000);
    int stop = w->stop;
    pthread_mutex_unlock(&w->mu);
    return stop;
}

void qbc_worker_join(qbc_worker_t *w)
{
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (w->started)
        pthread_join(w->thread, NULL);
    w->started = 0;
}

int qbc_worker_drain(qbc_worker_t *w, const unsigned *count, int64_t ms)
{
    int64_t until = qbc_mono_ns() + ms * 1000000;
    pthread_mutex_lock(&w->mu);
    while (*count > 0 && qbc_cond_wait_until(&w->cv, &w->mu, until) != ETIMEDOUT)
        ;
    int drained = *count == 0;
    pthread_mutex_unlock(&w->mu);
    return drained;
}

void qbc_worker_dispose(qbc_worker_t *w)
{
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}
