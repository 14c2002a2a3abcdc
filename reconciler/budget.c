/*
 * budget.c — a realm's call budget (qbo-facts §5): a sliding window of call start times
 * (≤ rate per window), a cap on calls in flight, and a pause after a 429 (Retry-After if
 * sent, else the configured pause). Lower priorities leave headroom for live webhooks:
 * CDC polls may use 80% of the window and all but one in-flight slot, backfills 60% and
 * half the slots. Also: exponential backoff with jitter, and Retry-After parsing.
 */
#include <stdlib.h>
#include <string.h>
#include "rec_internal.h"

void qbc_budget_init(qbc_budget_t *b, unsigned rate, unsigned max_inflight, int64_t window_ns)
{
    memset(b, 0, sizeof(*b));
    b->cap = rate ? rate : 1;
    b->ts = qbc_calloc(b->cap, sizeof(*b->ts));
    b->max_inflight = max_inflight ? max_inflight : 1;
    b->window_ns = window_ns;
}

void qbc_budget_dispose(qbc_budget_t *b)
{
    free(b->ts);
    b->ts = NULL;
}

static void prune(qbc_budget_t *b, int64_t now)
{
    while (b->n > 0 && b->ts[b->head] <= now - b->window_ns) {
        b->head = (b->head + 1) % b->cap;
        b->n--;
    }
}

static unsigned rate_for(const qbc_budget_t *b, int prio)
{
    unsigned r = prio == REC_PRIO_LIVE ? b->cap : prio == REC_PRIO_CDC ? b->cap * 4 / 5 : b->cap * 3 / 5;
    return r ? r : 1;
}

static unsigned inflight_for(const qbc_budget_t *b, int prio)
{
    unsigned m = b->max_inflight;
    if (prio == REC_PRIO_CDC)
        m = m > 1 ? m - 1 : 1;
    else if (prio == REC_PRIO_BACKFILL)
        m = m > 1 ? m / 2 : 1;
    return m;
}

unsigned qbc_budget_used(qbc_budget_t *b, int64_t now)
{
    prune(b, now);
    return b->n;
}

unsigned qbc_budget_available(qbc_budget_t *b, int64_t now, int prio)
{
    prune(b, now);
    if (b->paused_until_ns > now || b->fenced)
        return 0;
    unsigned r = rate_for(b, prio), m = inflight_for(b, prio);
    if (b->n >= r || b->inflight >= m)
        return 0;
    unsigned a = r - b->n, c = m - b->inflight;
    return a < c ? a : c;
}

unsigned qbc_budget_rate_left(qbc_budget_t *b, int64_t now, int prio)
{
    prune(b, now);
    unsigned r = rate_for(b, prio);
    return b->n >= r ? 0 : r - b->n;
}

int64_t qbc_budget_next(qbc_budget_t *b, int64_t now, int prio)
{
    prune(b, now);
    int64_t t = now;
    if (b->fenced) /* ownership comes back with the cluster's epoch: look again in a second */
        return now + 1000000000LL;
    if (b->paused_until_ns > t)
        t = b->paused_until_ns;
    unsigned r = rate_for(b, prio);
    if (b->n >= r) {
        /* the (n - r + 1)-th oldest start must leave the window */
        int64_t leave = b->ts[(b->head + (b->n - r)) % b->cap] + b->window_ns + 1;
        if (leave > t)
            t = leave;
    }
    return t;
}

void qbc_budget_take(qbc_budget_t *b, int64_t now)
{
    prune(b, now);
    if (b->n == b->cap) { /* over budget (a caller ignored available()): forget the oldest */
        b->head = (b->head + 1) % b->cap;
        b->n--;
    }
    b->ts[(b->head + b->n) % b->cap] = now;
    b->n++;
    b->inflight++;
}

void qbc_budget_take_n(qbc_budget_t *b, int64_t now, unsigned units)
{
    qbc_budget_take(b, now);
    for (unsigned i = 1; i < units; i++) {
        qbc_budget_take(b, now);
        b->inflight--;
    }
}

void qbc_budget_done(qbc_budget_t *b)
{
    if (b->inflight > 0)
        b->inflight--;
}

void qbc_budget_throttle(qbc_budget_t *b, int64_t now, int64_t pause_ns)
{
    if (now + pause_ns > b->paused_until_ns)
        b->paused_until_ns = now + pause_ns;
}

/* ---------------------------------------------------------------- backoff */

uint64_t qbc_rng_next(uint64_t *s)
{
    /* xorshift64* */
    uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

uint64_t qbc_backoff_ms(unsigned attempt, unsigned base_ms, unsigned max_ms, uint64_t *rng)
{
    uint64_t d = base_ms ? base_ms : 1;
    for (unsigned i = 1; i < attempt && d < max_ms; i++)
        d *= 2;
    if (d > max_ms)
        d = max_ms;
    uint64_t half = d / 2;
    return half + (d - half ? qbc_rng_next(rng) % (d - half + 1) : 0);
}

uint64_t qbc_parse_retry_after(const char *v, size_t len)
{
    while (len > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        len--;
    }
    while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t' || v[len - 1] == '\r' || v[len - 1] == '\n'))
        len--;
    if (len == 0 || len > 9)
        return 0;
    uint64_t s = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return 0; /* an HTTP-date: use the configured pause */
        s = s * 10 + (uint64_t)(v[i] - '0');
    }
    return s * 1000;
}
