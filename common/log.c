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
    n = (size_t)snprintf(line, sizeof(line), "%s %s %s: ", ts,
                         level_names[level < 0   ? 0
                                     : level > 3 ? 3
                                                 : level],
                         module);
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
