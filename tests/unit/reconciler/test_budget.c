/* test_budget.c — sliding window, in-flight cap, 429 pause, priorities, backoff. */
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "rec_internal.h"

#define S 1000000000LL
#define MS 1000000LL

static void test_window(void)
{
    qbc_budget_t b;
    qbc_budget_init(&b, 5, 3, 60 * S);
    int64_t t = 1000 * S;
    is_int(qbc_budget_available(&b, t, REC_PRIO_LIVE), 3, "in-flight cap bounds first");
    for (int i = 0; i < 3; i++)
        qbc_budget_take(&b, t + i * S);
    is_int(qbc_budget_available(&b, t + 3 * S, REC_PRIO_LIVE), 0, "3 in flight: none");
    qbc_budget_done(&b);
    qbc_budget_done(&b);
    qbc_budget_done(&b);
    is_int(qbc_budget_available(&b, t + 3 * S, REC_PRIO_LIVE), 2, "rate leaves 2");
    qbc_budget_take(&b, t + 4 * S);
    qbc_budget_take(&b, t + 5 * S);
    qbc_budget_done(&b);
    qbc_budget_done(&b);
    is_int(qbc_budget_available(&b, t + 6 * S, REC_PRIO_LIVE), 0, "5 in the window: none");
    is_int(qbc_budget_next(&b, t + 6 * S, REC_PRIO_LIVE), t + 60 * S + 1, "next when the oldest leaves");
    is_int(qbc_budget_used(&b, t + 30 * S), 5, "5 used");
    is_int(qbc_budget_available(&b, t + 60 * S + 1, REC_PRIO_LIVE), 1, "oldest left the window");
    is_int(qbc_budget_used(&b, t + 62 * S), 2, "2 left after 62 s");
    qbc_budget_dispose(&b);
}

static void test_priorities(void)
{
    qbc_budget_t b;
    qbc_budget_init(&b, 10, 10, 60 * S);
    int64_t t = 5 * S;
    for (int i = 0; i < 8; i++) {
        qbc_budget_take(&b, t);
        qbc_budget_done(&b);
    }
    is_int(qbc_budget_available(&b, t, REC_PRIO_LIVE), 2, "live may use all 10");
    is_int(qbc_budget_available(&b, t, REC_PRIO_CDC), 0, "cdc stops at 80%");
    is_int(qbc_budget_available(&b, t, REC_PRIO_BACKFILL), 0, "backfill stops at 60%");
    ok(qbc_budget_next(&b, t, REC_PRIO_CDC) > t, "cdc waits");
    is_int(qbc_budget_next(&b, t, REC_PRIO_LIVE), t, "live does not");
    qbc_budget_dispose(&b);
}

static void test_throttle(void)
{
    qbc_budget_t b;
    qbc_budget_init(&b, 500, 10, 60 * S);
    int64_t t = 7 * S;
    qbc_budget_throttle(&b, t, 60 * S);
    is_int(qbc_budget_available(&b, t + 59 * S, REC_PRIO_LIVE), 0, "paused for 60 s");
    is_int(qbc_budget_next(&b, t, REC_PRIO_LIVE), t + 60 * S, "next at the end of the pause");
    is_int(qbc_budget_available(&b, t + 60 * S, REC_PRIO_LIVE), 10, "resumes");
    qbc_budget_throttle(&b, t, 5 * S);
    is_int(qbc_budget_available(&b, t + 61 * S, REC_PRIO_LIVE), 10, "a shorter pause does not extend an old one");
    qbc_budget_dispose(&b);
}

static void test_backoff(void)
{
    uint64_t rng = 42;
    int okay = 1;
    for (unsigned a = 1; a <= 10; a++) {
        uint64_t d = 1000;
        for (unsigned i = 1; i < a; i++)
            d = d * 2 > 8000 ? 8000 : d * 2;
        for (int k = 0; k < 200; k++) {
            uint64_t v = qbc_backoff_ms(a, 1000, 8000, &rng);
            if (v < d / 2 || v > d)
                okay = 0;
        }
    }
    ok(okay, "backoff within [d/2, d], doubling from base, capped");
    uint64_t a = qbc_backoff_ms(3, 1000, 60000, &rng), b = qbc_backoff_ms(3, 1000, 60000, &rng),
             c = qbc_backoff_ms(3, 1000, 60000, &rng);
    ok(!(a == b && b == c), "jitter varies");
    is_int(qbc_parse_retry_after(" 120\r\n", 6), 120000, "Retry-After seconds");
    is_int(qbc_parse_retry_after(" Wed, 21 Oct 2015 07:28:00 GMT\r\n", 32), 0, "Retry-After date ignored");
    is_int(qbc_parse_retry_after("", 0), 0, "empty");
}

int main(void)
{
    subtest("window", test_window);
    subtest("priorities", test_priorities);
    subtest("throttle", test_throttle);
    subtest("backoff", test_backoff);
    return done_testing();
}
