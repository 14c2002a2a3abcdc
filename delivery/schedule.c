/*
 * schedule.c — when a failed delivery is tried again: the configured schedule, jitter,
 * and the receiver's Retry-After (delay-seconds only; kept trivially simple on purpose).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "delivery.h"

#define WEEK_MS (7LL * 86400 * 1000)
#define DAY_MS (86400LL * 1000)

int qbc_delivery_schedule_parse(const char *text, qbc_delivery_schedule_t *out)
{
    memset(out, 0, sizeof(*out));
    if (text == NULL)
        return QBC_EINVAL;
    const char *p = text;
    for (;;) {
        while (*p == ' ')
            p++;
        if (*p < '0' || *p > '9') /* no sign, no empty item, no "inf"/"nan" */
            return QBC_EINVAL;
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (errno != 0 || end == p || !(v >= 0) || v * 1000 > (double)WEEK_MS)
            return QBC_EINVAL;
        if (out->n == QBC_DELIVERY_SCHEDULE_MAX)
            return QBC_EINVAL;
        out->delay_ms[out->n++] = (int64_t)(v * 1000 + 0.5);
        p = end;
        while (*p == ' ')
            p++;
        if (*p == '\0')
            return 0;
        if (*p++ != ',')
            return QBC_EINVAL;
    }
}

int64_t qbc_delivery_schedule_next(const qbc_delivery_schedule_t *s, unsigned failures, int64_t retry_after_ms,
                                   double rnd)
{
    if (failures >= s->n)
        return -1;
    int64_t d = s->delay_ms[failures];
    d += (int64_t)((double)d * 0.2 * (rnd - 0.5)); /* +-10% */
    if (retry_after_ms > DAY_MS)
        retry_after_ms = DAY_MS;
    return d > retry_after_ms ? d : retry_after_ms;
}

int64_t qbc_delivery_retry_after(const char *v, size_t len)
{
    size_t i = 0, digits = 0;
    int64_t s = 0;
    while (i < len && (v[i] == ' ' || v[i] == '\t'))
        i++;
    for (; i < len && v[i] >= '0' && v[i] <= '9'; i++, digits++) {
        if (digits == 9)
            return 0;
        s = s * 10 + (v[i] - '0');
    }
    while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == '\r' || v[i] == '\n'))
        i++;
    return digits > 0 && i == len ? s * 1000 : 0;
}
