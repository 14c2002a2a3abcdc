/*
 * test_worker.c — common/worker.c: a thread of one's own that stops when asked. The thread
 * runs until joined; a nap ends when its time is up, when cv is signalled, and at once when
 * the thread is stopping; join wakes a thread in a long nap; a worker never started joins;
 * drain waits for a count to reach 0, or for its time.
 */
#include <stdio.h>
#include <time.h>
#include "common.h"
#include "../../tap.h"

typedef struct {
    qbc_worker_t worker;
    int turns; /* under mu */
    int64_t woke_after_ns;
} ctx_t;

static void *loop(void *arg)
{
    ctx_t *c = arg;
    while (!qbc_worker_nap(&c->worker, 60000)) { /* a minute: only a signal or a stop ends it */
        pthread_mutex_lock(&c->worker.mu);
        c->turns++;
        pthread_mutex_unlock(&c->worker.mu);
    }
    return NULL;
}

static unsigned pending = 1;

/* another thread's last store job coming back: the count drops to 0, cv signalled */
static void *finish_later(void *arg)
{
    qbc_worker_t *w = arg;
    struct timespec ts = {0, 50000000};
    nanosleep(&ts, NULL);
    pthread_mutex_lock(&w->mu);
    pending = 0;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static int turns(ctx_t *c)
{
    pthread_mutex_lock(&c->worker.mu);
    int n = c->turns;
    pthread_mutex_unlock(&c->worker.mu);
    return n;
}

int main(void)
{
    ctx_t c = {0};
    qbc_worker_init(&c.worker);
    ok(!qbc_worker_stopping(&c.worker), "a new worker is not stopping");
    int64_t t0 = qbc_mono_ns();
    ok(qbc_worker_nap(&c.worker, 20) == 0 && qbc_mono_ns() - t0 >= 20000000, "a nap lasts its time");
    is_int(qbc_worker_start(&c.worker, loop, &c), 0, "the thread starts");
    for (int i = 0; i < 3; i++) { /* each signal ends one nap (a spurious wake-up may add a turn) */
        int before = turns(&c);
        int64_t until = qbc_mono_ns() + 10 * 1000000000LL;
        while (turns(&c) == before && qbc_mono_ns() < until) {
            pthread_mutex_lock(&c.worker.mu);
            pthread_cond_signal(&c.worker.cv);
            pthread_mutex_unlock(&c.worker.mu);
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    char name[64];
    snprintf(name, sizeof(name), "a signal ends a minute's nap (%d turns)", turns(&c));
    ok(turns(&c) >= 3, name);
    t0 = qbc_mono_ns();
    qbc_worker_join(&c.worker);
    ok(qbc_mono_ns() - t0 < 10 * 1000000000LL, "join wakes the thread in its nap and waits for it");
    ok(qbc_worker_stopping(&c.worker), "it is stopping");
    t0 = qbc_mono_ns();
    ok(qbc_worker_nap(&c.worker, 60000) == 1 && qbc_mono_ns() - t0 < 1000000000LL,
       "a nap when stopping returns at once");
    qbc_worker_join(&c.worker); /* a second join: nothing */
    qbc_worker_dispose(&c.worker);

    qbc_worker_t d;
    qbc_worker_init(&d);
    t0 = qbc_mono_ns();
    ok(qbc_worker_drain(&d, &pending, 50) == 0 && qbc_mono_ns() - t0 >= 50000000, "drain: the time runs out");
    pthread_t th;
    pthread_create(&th, NULL, finish_later, &d);
    ok(qbc_worker_drain(&d, &pending, 10000) == 1, "drain: ends when the count reaches 0");
    pthread_join(th, NULL);
    qbc_worker_dispose(&d);

    ctx_t idle = {0};
    qbc_worker_init(&idle.worker);
    qbc_worker_join(&idle.worker);
    ok(qbc_worker_stopping(&idle.worker), "a worker never started joins at once");
    qbc_worker_dispose(&idle.worker);
    return done_testing();
}
