/*
 * test_schedule.c — delivery/schedule.c: the schedule's syntax, the default (about 28
 * hours over 8 attempts), jitter within +-10%, Retry-After taking over when longer, and
 * the exhausted schedule.
 */
#include <stdio.h>
#include <string.h>
#include "delivery.h"
#include "../../tap.h"

int main(void)
{
    qbc_delivery_schedule_t s;
    is_int(qbc_delivery_schedule_parse(QBC_DELIVERY_SCHEDULE_DEFAULT, &s), 0, "the default parses");
    is_int(s.n, 8, "8 attempts");
    int64_t total = 0;
    for (unsigned i = 0; i < s.n; i++)
        total += s.delay_ms[i];
    ok(total >= 27 * 3600 * 1000LL && total <= 29 * 3600 * 1000LL, "about 28 hours from the first to the last");
    is_int(qbc_delivery_schedule_parse("0, 0.2 ,1", &s), 0, "decimals and spaces");
    ok(s.n == 3 && s.delay_ms[0] == 0 && s.delay_ms[1] == 200 && s.delay_ms[2] == 1000, "in ms");
    const char *bad[] = {"", ",", "1,", "-1", "1,,2", "abc", "1;2", "inf", "nan", "1e9", "700000", NULL};
    for (int i = 0; bad[i] != NULL; i++) {
        char name[64];
        snprintf(name, sizeof(name), "'%s' is refused", bad[i]);
        ok(qbc_delivery_schedule_parse(bad[i], &s) == QBC_EINVAL, name);
    }
    char many[200] = "0";
    for (int i = 0; i < QBC_DELIVERY_SCHEDULE_MAX; i++)
        strcat(many, ",1");
    ok(qbc_delivery_schedule_parse(many, &s) == QBC_EINVAL, "more than 32 attempts are refused");

    qbc_delivery_schedule_parse("0,5,300", &s);
    is_int(qbc_delivery_schedule_next(&s, 1, 0, 0.5), 5000, "after the first failure: 5 s (no jitter at 0.5)");
    is_int(qbc_delivery_schedule_next(&s, 1, 0, 0.0), 4500, "-10% at the low end");
    ok(qbc_delivery_schedule_next(&s, 2, 0, 0.9999) <= 330000 && qbc_delivery_schedule_next(&s, 2, 0, 0.9999) > 329000,
       "+10% at the high end");
    is_int(qbc_delivery_schedule_next(&s, 1, 60000, 0.5), 60000, "a longer Retry-After wins");
    is_int(qbc_delivery_schedule_next(&s, 2, 60000, 0.5), 300000, "a shorter one does not");
    is_int(qbc_delivery_schedule_next(&s, 1, 10LL * 86400 * 1000, 0.5), 86400 * 1000LL,
           "Retry-After is capped at a day");
    is_int(qbc_delivery_schedule_next(&s, 3, 0, 0.5), -1, "exhausted after 3 attempts");

    is_int(qbc_delivery_retry_after("120", 3), 120000, "Retry-After: 120");
    is_int(qbc_delivery_retry_after(" 7\r\n", 4), 7000, "spaces and the line end");
    is_int(qbc_delivery_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 29), 0, "an HTTP-date: the schedule applies");
    is_int(qbc_delivery_retry_after("1234567890", 10), 0, "10 digits: ignored");
    is_int(qbc_delivery_retry_after("-5", 2), 0, "negative: ignored");
    is_int(qbc_delivery_retry_after("5x", 2), 0, "trailing junk: ignored");
    is_int(qbc_delivery_retry_after("", 0), 0, "empty: ignored");
    return done_testing();
}
