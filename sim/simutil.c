/*
 * simutil.c — the deterministic random stream and the Pacific-time clock.
 *
 * QBO renders MetaData times in Pacific time with the offset in force at that
 * instant (qbo-facts §9: "The API returns date in PST"), so we need the US
 * daylight-saving rule (since 2007): PDT from the second Sunday of March, 02:00
 * PST, to the first Sunday of November, 02:00 PDT. We compute it rather than
 * touching the process-wide TZ.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "common.h"
#include "sim.h"

/* ============================== random ============================== */

void sim_rng_seed(sim_rng_t *r, uint64_t seed)
{
    r->s = seed ^ 0x5851f42d4c957f2dULL;
}

uint64_t sim_rng_next(sim_rng_t *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t sim_rng_below(sim_rng_t *r, uint64_t n)
{
    return n ? sim_rng_next(r) % n : 0;
}

double sim_rng_unit(sim_rng_t *r)
{
    return (double)(sim_rng_next(r) >> 11) / 9007199254740992.0;
}

/* =============================== time =============================== */

/* day of month of the nth Sunday (n >= 1) of year/month. */
static unsigned nth_sunday(int64_t year, unsigned month, unsigned n)
{
    int64_t d1 = qbc_days_from_civil(year, month, 1);
    /* 1970-01-01 was a Thursday (weekday 4, Sunday = 0). */
    int wd = (int)(((d1 % 7) + 7 + 4) % 7);
    unsigned first = (unsigned)(1 + (7 - wd) % 7);
    return first + 7 * (n - 1);
}

int sim_pacific_offset(int64_t ns)
{
    int64_t s = ns / 1000000000;
    if (ns < 0 && ns % 1000000000)
        s--;
    time_t t = (time_t)s;
    struct tm tm;
    gmtime_r(&t, &tm);
    int64_t year = tm.tm_year + 1900;
    int64_t start = qbc_days_from_civil(year, 3, nth_sunday(year, 3, 2)) * 86400 + 10 * 3600; /* 02:00 PST */
    int64_t end = qbc_days_from_civil(year, 11, nth_sunday(year, 11, 1)) * 86400 + 9 * 3600;  /* 02:00 PDT */
    return (s >= start && s < end) ? -7 * 3600 : -8 * 3600;
}

char *sim_time_pacific(int64_t ns, int with_ms, int colon_offset, char *buf)
{
    int off = sim_pacific_offset(ns);
    int64_t local = ns + (int64_t)off * 1000000000;
    time_t t = (time_t)(local / 1000000000);
    int ms = (int)((local % 1000000000) / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    int oh = -off / 3600, om = (-off % 3600) / 60;
    char frac[8] = "";
    if (with_ms)
        snprintf(frac, sizeof(frac), ".%03d", ms);
    char tmp[128];
    snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d%s-%02d%s%02d", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac, oh, colon_offset ? ":" : "", om);
    tmp[39] = '\0'; /* real output is at most 35 bytes */
    memcpy(buf, tmp, strlen(tmp) + 1);
    return buf;
}

char *sim_time_utc_ns(int64_t ns, char *buf)
{
    time_t t = (time_t)(ns / 1000000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char tmp[128];
    snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%09dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ns % 1000000000));
    tmp[39] = '\0'; /* real output is at most 35 bytes */
    memcpy(buf, tmp, strlen(tmp) + 1);
    return buf;
}

int sim_time_parse_qbo(const char *s, size_t len, int64_t *out_ns)
{
    char tmp[64];
    if (qbc_time_parse(s, len, out_ns) == 0)
        return 0;
    if (len == 0 || len > 40)
        return QBC_EMALFORMED;
    /* Without an offset QBO reads local Pacific time (§11). Parse as UTC, then shift by
     * the offset in force; the two candidate offsets can only disagree around the DST
     * switch, where we take the one that is self-consistent. */
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    if (len == 10)
        strcat(tmp, "T00:00:00");
    strcat(tmp, "Z");
    int64_t utc;
    if (qbc_time_parse(tmp, strlen(tmp), &utc) != 0)
        return QBC_EMALFORMED;
    int64_t guess = utc - (int64_t)sim_pacific_offset(utc) * 1000000000;
    *out_ns = utc - (int64_t)sim_pacific_offset(guess) * 1000000000;
    return 0;
}

/* ============================ form / URL ============================ */

size_t sim_url_decode(const char *s, size_t len, char *out, size_t outsz)
{
    size_t n = 0;
    qbc_url_decode(s, len, out, outsz, &n); /* a value too long for out is cut short */
    return n;
}

int sim_form_get(const char *s, size_t len, const char *key, char *out, size_t outsz)
{
    size_t klen = strlen(key);
    const char *p = s, *end = s + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *ke = eq ? eq : pe;
        char kbuf[64];
        size_t kl = sim_url_decode(p, (size_t)(ke - p), kbuf, sizeof(kbuf));
        if (kl == klen && memcmp(kbuf, key, klen) == 0) {
            if (!eq) {
                if (outsz)
                    out[0] = '\0';
                return 0;
            }
            return (int)sim_url_decode(eq + 1, (size_t)(pe - eq - 1), out, outsz);
        }
        p = pe + (amp ? 1 : 0);
    }
    return -1;
}
