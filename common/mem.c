/*
 * mem.c — allocation that dies loudly instead of returning NULL (STYLE.md part 2.6).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common.h"

void qbc__fatal(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "fatal: %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

void *qbc__alloc(size_t sz, const char *file, int line)
{
    void *p = malloc(sz == 0 ? 1 : sz);
    if (p == NULL)
        qbc__fatal(file, line, "out of memory allocating %zu bytes", sz);
    return p;
}

void *qbc__calloc(size_t n, size_t sz, const char *file, int line)
{
    void *p = calloc(n == 0 ? 1 : n, sz == 0 ? 1 : sz);
    if (p == NULL)
        qbc__fatal(file, line, "out of memory allocating %zu x %zu bytes", n, sz);
    return p;
}

void *qbc__realloc(void *p, size_t sz, const char *file, int line)
{
    void *q = realloc(p, sz == 0 ? 1 : sz);
    if (q == NULL)
        qbc__fatal(file, line, "out of memory reallocating %zu bytes", sz);
    return q;
}

char *qbc__strndup(const char *s, size_t n, const char *file, int line)
{
    size_t len = strnlen(s, n);
    char *p = qbc__alloc(len + 1, file, line);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}
