/*
 * time.c — clocks and the ISO-8601 subset that QuickBooks Online speaks.
 *
 * QBO timestamps come as "2015-10-05T14:42:19-0700" (classic webhooks),
 * "2025-09-08T20:52:31.657Z", "2025-10-07T19:59:07.034359333Z" (CloudEvents,
 * nanoseconds) and "2015-12-23T09:00-07:00" (CDC examples, no seconds). We keep
 * nanoseconds since the epoch so that ordering by time never loses precision.
 */
#include <errno.h>
#include <stdio.h>
#include <time.h>
#include "common.h"

int64_t qbc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t qbc_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int qbc_cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc != 0)
        return rc;
    if ((rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)) == 0)
        rc = pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}

int qbc_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_mono_ns)
{
    if (deadline_mono_ns <= qbc_mono_ns())
        return ETIMEDOUT;
    /* cv runs on CLOCK_MONOTONIC (qbc_cond_init_mono), the clock qbc_mono_ns() reads */
    struct timespec ts = {(time_t)(deadline_mono_ns / 1000000000), (long)(deadline_mono_ns % 1000000000)};
    int rc = pthread_cond_timedwait(cv, mu, &ts);
    return rc == ETIMEDOUT ? ETIMEDOUT : 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
int64_t qbc_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

/* reads exactly n decimal digits at *p; advances *p. */
static int digits(const char **p, const char *end, int n, int *out)
{
    int v = 0;
    if (end - *p < n)
        return -1;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int qbc_time_parse(const char *s, size_t len, int64_t *out_ns)
{
    const char *p = s, *end = s + len;
    int year, mon, day, hour, min, sec = 0, oh = 0, om = 0, sign = 0;
    int64_t frac_ns = 0;

    if (digits(&p, end, 4, &year) || p == end || *p++ != '-' || digits(&p, end, 2, &mon) || p == end || *p++ != '-' ||
        digits(&p, end, 2, &day) || p == end || (*p != 'T' && *p != 't') || (++p, 0) || digits(&p, end, 2, &hour) ||
        p == end || *p++ != ':' || digits(&p, end, 2, &min))
        return QBC_EMALFORMED;
    if (p < end && *p == ':') {
        p++;
        if (digits(&p, end, 2, &sec))
            return QBC_EMALFORMED;
        if (p < end && *p == '.') {
            int nd = 0;
            p++;
            while (p < end && *p >= '0' && *p <= '9') {
                if (nd < 9) {
                    frac_ns = frac_ns * 10 + (*p - '0');
                    nd++;
                } else {
                    return QBC_EMALFORMED; /* more than nanosecond precision is not a QBO format */
                }
                p++;
            }
            if (nd == 0)
                return QBC_EMALFORMED;
            for (int i = nd; i < 9; i++)
                frac_ns *= 10;
        }
    }
    if (p == end)
        return QBC_EMALFORMED; /* no offset: refuse to guess */
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p++ == '-' ? -1 : 1;
        if (digits(&p, end, 2, &oh))
            return QBC_EMALFORMED;
        if (p < end && *p == ':')
            p++;
        if (digits(&p, end, 2, &om))
            return QBC_EMALFORMED;
        if (oh > 23 || om > 59)
            return QBC_EMALFORMED;
    } else {
        return QBC_EMALFORMED;
    }
    if (p != end)
        return QBC_EMALFORMED;
    if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
        return QBC_EMALFORMED;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day > mdays[mon - 1] || (mon == 2 && day == 29 && !leap))
        return QBC_EMALFORMED;

    int64_t secs = qbc_days_from_civil(year, (unsigned)mon, (unsigned)day) * 86400 + hour * 3600 + min * 60 + sec;
    secs -= (int64_t)sign * (oh * 3600 + om * 60);
    /* int64 nanoseconds only reach from 1677-09-21 to 2262-04-11; past that the product would overflow */
    if (secs > INT64_MAX / 1000000000 || secs < INT64_MIN / 1000000000 ||
        (secs == INT64_MAX / 1000000000 && frac_ns > INT64_MAX % 1000000000))
        return QBC_EMALFORMED;
    *out_ns = secs * 1000000000 + frac_ns;
    return 0;
}

char *qbc_time_format(int64_t ns, char *buf)
{
    /* floor division written so that it cannot overflow, not even for INT64_MIN */
    int64_t secs = ns / 1000000000, rem = ns % 1000000000;
    if (rem < 0) {
        rem += 1000000000;
        secs--;
    }
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    int y;
    unsigned m, d;

    civil_from_days(days, &y, &m, &d);
    snprintf(buf, QBC_TIME_BUFSZ, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", y, m, d, (int)(sod / 3600),
             (int)(sod / 60 % 60), (int)(sod % 60), (int)(rem / 1000000));
    return buf;
}
