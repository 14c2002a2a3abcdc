/*
 * log.c — one line per event on stderr, written with a single write(2) so that
 * lines from different threads never interleave.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include "common.h"

static volatile int log_level = QBC_LOG_INFO;
static volatile int log_json; /* QBCDC_LOG_FORMAT=json: one JSON object a line */
static const char *level_names[] = {"error", "warn", "info", "debug"};

void qbc_log_set_level(int level)
{
    log_level = level;
}

int qbc_log_set_level_name(const char *name)
{
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            log_level = i;
            return 0;
        }
    }
    return QBC_EINVAL;
}

int qbc_log_set_format_name(const char *name)
{
    if (strcasecmp(name, "text") == 0 || strcasecmp(name, "json") == 0) {
        log_json = strcasecmp(name, "json") == 0;
        return 0;
    }
    return QBC_EINVAL;
}

/* appends s as the inside of a JSON string (quotes, backslashes and control bytes escaped) */
static size_t json_escape(char *out, size_t room, const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 7 < room; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            n += (size_t)snprintf(out + n, room - n, "\\u%04x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    return n;
}

/* {"time","level","module","message"[,"realm"]}: the realm when the message starts "realm <id>" */
static size_t json_line(char *line, size_t room, const char *ts, const char *level, const char *module, const char *msg,
                        size_t mlen)
{
    size_t n = (size_t)snprintf(line, room, "{\"time\":\"%s\",\"level\":\"%s\",\"module\":\"", ts, level);
    n += json_escape(line + n, room - n, module, strlen(module));
    n += (size_t)snprintf(line + n, room - n, "\",\"message\":\"");
    n += json_escape(line + n, room - n, msg, mlen);
    if (mlen > 6 && memcmp(msg, "realm ", 6) == 0) {
        size_t k = 6;
        while (k < mlen && k < 6 + 63 && msg[k] != ':' && msg[k] != ' ' && msg[k] != ',')
            k++;
        if (k > 6 && n + (k - 6) + 16 < room) {
            n += (size_t)snprintf(line + n, room - n, "\",\"realm\":\"");
            n += json_escape(line + n, room - n, msg + 6, k - 6);
        }
    }
    if (n + 3 < room)
        n += (size_t)snprintf(line + n, room - n, "\"}");
    return n < room ? n : room - 1;
}

int qbc_log_enabled(int level)
{
    return level <= log_level;
}

void qbc_log(int level, const char *module, const char *fmt, ...)
{
    char line[2048];
    char ts[QBC_TIME_BUFSZ];
    size_t n;
    va_list ap;

    if (!qbc_log_enabled(level))
        return;
    qbc_time_format(qbc_now_ns(), ts);
    const char *lname = level_names[level < 0 ? 0 : level > 3 ? 3 : level];
    if (log_json) {
        char msg[2048], out[4096 + 256];
        va_start(ap, fmt);
        int m = vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        size_t mlen = m < 0 ? 0 : (size_t)m < sizeof(msg) ? (size_t)m : sizeof(msg) - 1;
        size_t k = json_line(out, sizeof(out) - 1, ts, lname, module, msg, mlen);
        out[k++] = '\n';
        ssize_t w = write(2, out, k);
        (void)w;
        return;
    }
    n = (size_t)snprintf(line, sizeof(line), "%s %s %s: ", ts, lname, module);
    if (n < sizeof(line)) {
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        va_end(ap);
        if (m > 0)
            n += (size_t)m;
    }
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2; /* truncated: keep the newline */
    line[n++] = '\n';
    ssize_t w = write(2, line, n);
    (void)w;
}
