/*
 * test_time.c — common/time.c: the ISO-8601 forms QBO sends (qbo-facts §1.1, §1.2, §2),
 * the ones it must refuse, and the edges of int64 nanoseconds.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common.h"
#include "tap.h"

/* parses a NUL-terminated literal; returns the rc and stores the value (or a sentinel) */
static int parse(const char *s, int64_t *ns)
{
    *ns = 12345; /* sentinel: a failed parse must not look like a plausible time */
    return qbc_time_parse(s, strlen(s), ns);
}

static void accepts(const char *s, int64_t want)
{
    int64_t got;
    char name[160];
    snprintf(name, sizeof(name), "parses %s", s);
    int rc = parse(s, &got);
    is_int(rc, 0, name);
    snprintf(name, sizeof(name), "value of %s", s);
    is_int(got, want, name);
}

static void rejects(const char *s)
{
    int64_t got;
    char name[160];
    snprintf(name, sizeof(name), "rejects \"%s\"", s);
    is_int(parse(s, &got), QBC_EMALFORMED, name);
}

static void test_qbo_samples(void)
{
    /* classic webhook samples: offset without a colon, and Z with milliseconds */
    accepts("2015-10-05T14:42:19-0700", INT64_C(1444081339000000000));
    accepts("2016-10-05T03:09:04.000Z", INT64_C(1475636944000000000));
    accepts("2016-02-02T16:25:00-0800", INT64_C(1454459100000000000));
    /* CloudEvents samples: milliseconds and nanoseconds */
    accepts("2025-09-08T20:52:31.657Z", INT64_C(1757364751657000000));
    accepts("2025-10-07T19:59:07.034359333Z", INT64_C(1759867147034359333));
    accepts("2025-09-10T21:31:25.179851517Z", INT64_C(1757539885179851517));
    /* CDC examples: colon offsets, and a time without seconds */
    accepts("2015-12-23T12:55:50-08:00", INT64_C(1450904150000000000));
    accepts("2015-12-23T12:56:06.196-08:00", INT64_C(1450904166196000000));
    accepts("2015-12-23T09:00-07:00", INT64_C(1450886400000000000));
}

static void test_forms(void)
{
    accepts("1970-01-01T00:00:00Z", 0);
    accepts("1970-01-01T00:00:00+00:00", 0);
    accepts("1970-01-01T00:00:00-0000", 0);
    accepts("1970-01-01t00:00:00z", 0);
    accepts("1969-12-31T23:59:59.5Z", INT64_C(-500000000));
    accepts("1970-01-01T05:30:00+05:30", 0);
    accepts("1970-01-01T05:30:00+0530", 0);
    accepts("1969-12-31T14:00:00-1000", 0);
    /* every fraction length from 1 to 9 digits */
    accepts("1970-01-01T00:00:00.1Z", 100000000);
    accepts("1970-01-01T00:00:00.12Z", 120000000);
    accepts("1970-01-01T00:00:00.123Z", 123000000);
    accepts("1970-01-01T00:00:00.1234Z", 123400000);
    accepts("1970-01-01T00:00:00.12345Z", 123450000);
    accepts("1970-01-01T00:00:00.123456Z", 123456000);
    accepts("1970-01-01T00:00:00.1234567Z", 123456700);
    accepts("1970-01-01T00:00:00.12345678Z", 123456780);
    accepts("1970-01-01T00:00:00.123456789Z", 123456789);
    accepts("1970-01-01T00:00:00.000000001Z", 1);
    /* calendar */
    accepts("2024-02-29T12:00:00+05:30", INT64_C(1709188200000000000));
    accepts("2000-02-29T00:00:00Z", INT64_C(951782400000000000));
    accepts("2016-12-31T23:59:59Z", INT64_C(1483228799000000000));
    accepts("2016-12-31T23:59:60Z", INT64_C(1483228800000000000)); /* a leap second lands on the next one */
}

static void test_refusals(void)
{
    rejects("");
    rejects("2015-10-05");
    rejects("2015-10-05T14:42:19"); /* no offset: QBO would mean Pacific time, we refuse to guess */
    rejects("2015-10-05T14:42");
    rejects("2015-10-05T14:42:19.123");
    rejects("2015-10-05 14:42:19Z"); /* space separator */
    rejects(" 2015-10-05T14:42:19Z");
    rejects("2015-10-05T14:42:19Z ");
    rejects("2015-10-05T14:42:19Zjunk");
    rejects("2015-10-05T14:42:19.Z");           /* dot without digits */
    rejects("2015-10-05T14:42:19.1234567891Z"); /* ten digits */
    rejects("2015-10-05T14:42:19+07");
    rejects("2015-10-05T14:42:19+7:00");
    rejects("2015-10-05T14:42:19+07:0");
    rejects("2015-10-05T14:42:19+07:");
    rejects("2015-10-05T14:42:19+2400");
    rejects("2015-10-05T14:42:19+07:60");
    rejects("2015-10-05T14:42:19UTC");
    rejects("15-10-05T14:42:19Z");
    rejects("2015-1-05T14:42:19Z");
    rejects("2015/10/05T14:42:19Z");
    rejects("2015-00-05T14:42:19Z");
    rejects("2015-13-05T14:42:19Z");
    rejects("2015-10-00T14:42:19Z");
    rejects("2015-10-32T14:42:19Z");
    rejects("2015-04-31T14:42:19Z");
    rejects("2023-02-29T00:00:00Z");
    rejects("1900-02-29T00:00:00Z");
    rejects("2015-10-05T24:00:00Z");
    rejects("2015-10-05T23:60:00Z");
    rejects("2015-10-05T23:59:61Z");
    rejects("2015-10-05T23:5:00Z");
    rejects("2015-10-05T2a:00:00Z");
    rejects("2015-10-05T14:42:19-07:00:00");
    rejects("+2015-10-05T14:42:19Z");
}

static void test_length_bound(void)
{
    int64_t ns = 0;
    /* the parser reads only len bytes: the text after them does not exist */
    const char *s = "2016-10-05T03:09:04.000Z trailing junk";
    is_int(qbc_time_parse(s, 24, &ns), 0, "reads exactly len bytes");
    is_int(ns, INT64_C(1475636944000000000), "value from a prefix");
    is_int(qbc_time_parse(s, 23, &ns), QBC_EMALFORMED, "a prefix cut before the Z has no offset");
    is_int(qbc_time_parse(s, 25, &ns), QBC_EMALFORMED, "one byte more is trailing junk");
    is_int(qbc_time_parse(s, 0, &ns), QBC_EMALFORMED, "length 0");
    char nul[] = "2016-10-05T03:09:04\0Z";
    is_int(qbc_time_parse(nul, sizeof(nul) - 1, &ns), QBC_EMALFORMED, "embedded NUL is not an offset");
    /* every proper prefix of a valid time fails, none reads past its end (ASan watches) */
    const char *full = "2025-10-07T19:59:07.034359333+05:30";
    size_t n = strlen(full), bad = 0;
    for (size_t i = 0; i < n; i++) {
        char *copy = qbc_alloc(i + 1);
        memcpy(copy, full, i);
        int64_t v;
        /* "...07.0343+05:30"-like prefixes never end in a complete offset except the whole string */
        if (qbc_time_parse(copy, i, &v) == 0)
            bad++;
        free(copy);
    }
    is_int(bad, 0, "no proper prefix of a full time parses");
}

static void test_range(void)
{
    /* int64 nanoseconds reach 2262-04-11T23:47:16.854775807Z */
    accepts("2262-04-11T23:47:16.854775807Z", INT64_MAX);
    rejects("2262-04-11T23:47:16.854775808Z");
    rejects("2262-04-11T23:47:17Z");
    rejects("2262-04-12T00:00:00Z");
    rejects("9999-12-31T23:59:59.999999999Z");
    rejects("9999-12-31T23:59:59-2359");
    accepts("1677-09-21T00:12:44Z", INT64_C(-9223372036000000000));
    rejects("1677-09-21T00:12:43Z");
    rejects("0000-01-01T00:00:00Z");
    /* the offset moves a representable local time out of range */
    accepts("2262-04-11T23:47:16+00:00", INT64_C(9223372036000000000));
    rejects("2262-04-11T23:47:16-00:01");
}

static void test_format(void)
{
    char buf[QBC_TIME_BUFSZ];
    is_str(qbc_time_format(0, buf), "1970-01-01T00:00:00.000Z", "format epoch");
    is_str(qbc_time_format(-1, buf), "1969-12-31T23:59:59.999Z", "format 1ns before epoch floors");
    is_str(qbc_time_format(INT64_C(-500000000), buf), "1969-12-31T23:59:59.500Z", "format -0.5s");
    is_str(qbc_time_format(INT64_C(-86400000000000), buf), "1969-12-31T00:00:00.000Z", "format exactly one day before");
    is_str(qbc_time_format(INT64_C(1759867147034359333), buf), "2025-10-07T19:59:07.034Z", "format truncates to ms");
    is_str(qbc_time_format(INT64_C(1444081339000000000), buf), "2015-10-05T21:42:19.000Z", "format is UTC");
    is_str(qbc_time_format(INT64_C(951782400000000000), buf), "2000-02-29T00:00:00.000Z", "format leap day");
    is_str(qbc_time_format(INT64_MAX, buf), "2262-04-11T23:47:16.854Z", "format INT64_MAX");
    is_str(qbc_time_format(INT64_MIN, buf), "1677-09-21T00:12:43.145Z", "format INT64_MIN");
    ok(qbc_time_format(0, buf) == buf, "format returns buf");

    /* round trip: what we format, we parse back (at millisecond precision) */
    int64_t samples[] = {
        0, 1, -1, INT64_C(1757364751657000000), INT64_C(1759867147034359333), INT64_C(-123456789012345678)};
    int fails = 0;
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        int64_t back = 0, ms = samples[i] / 1000000 * 1000000;
        if (samples[i] < 0 && samples[i] % 1000000 != 0)
            ms -= 1000000;
        qbc_time_format(samples[i], buf);
        if (qbc_time_parse(buf, strlen(buf), &back) != 0 || back != ms)
            fails++;
    }
    is_int(fails, 0, "format then parse round-trips at ms precision");
}

static void test_clocks(void)
{
    int64_t now = qbc_now_ns();
    ok(now > INT64_C(1735689600000000000), "wall clock is after 2025-01-01");
    int64_t a = qbc_mono_ns(), b = qbc_mono_ns();
    ok(b >= a, "monotonic clock does not go back");
}

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int flag;
} waiter_t;

static void *signal_soon(void *p)
{
    waiter_t *w = p;
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL);
    pthread_mutex_lock(&w->mu);
    w->flag = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* timed waits run on the monotonic clock: a deadline is qbc_mono_ns() + a duration */
static void test_monotonic_waits(void)
{
    waiter_t w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    is_int(qbc_cond_init_mono(&w.cv), 0, "a monotonic condition variable");
    pthread_mutex_lock(&w.mu);
    int64_t deadline = qbc_mono_ns() + 50 * 1000000;
    int rc = 0;
    while (rc == 0)
        rc = qbc_cond_wait_until(&w.cv, &w.mu, deadline);
    int64_t after = qbc_mono_ns();
    is_int(rc, ETIMEDOUT, "an unsignalled wait times out");
    ok(after >= deadline, "not before the deadline");
    /* a CLOCK_REALTIME condition variable would read this deadline as 1970 and return at once,
     * or, the other way round, wait for decades: bound it so a wrong clock fails, not hangs */
    ok(after - deadline < 5 * (int64_t)1000000000, "and not long after it");
    is_int(qbc_cond_wait_until(&w.cv, &w.mu, qbc_mono_ns() - 1), ETIMEDOUT, "a deadline already past: at once");

    pthread_t th;
    pthread_create(&th, NULL, signal_soon, &w);
    deadline = qbc_mono_ns() + 30 * (int64_t)1000000000;
    rc = 0;
    while (!w.flag && rc == 0)
        rc = qbc_cond_wait_until(&w.cv, &w.mu, deadline);
    is_int(rc, 0, "a signal before the deadline wakes the waiter");
    ok(w.flag && qbc_mono_ns() < deadline, "well before its 30 s deadline");
    pthread_mutex_unlock(&w.mu);
    pthread_join(th, NULL);
    pthread_cond_destroy(&w.cv);
}

int main(void)
{
    subtest("QBO samples", test_qbo_samples);
    subtest("accepted forms", test_forms);
    subtest("refusals", test_refusals);
    subtest("length bound", test_length_bound);
    subtest("int64 range", test_range);
    subtest("format", test_format);
    subtest("clocks", test_clocks);
    subtest("monotonic timed waits", test_monotonic_waits);
    return done_testing();
}
