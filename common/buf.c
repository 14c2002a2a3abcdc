/*
 * buf.c — a growable byte buffer, kept NUL-terminated, with an optional cap; its
 * append has libcurl's write-callback shape, so every HTTP client here collects
 * answers the same way.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common.h"

/* room for n more bytes and a NUL; -1 (nothing changed) past max */
static int reserve(qbc_buf_t *b, size_t n)
{
    if (n > SIZE_MAX / 2 - b->len || (b->max != 0 && b->len + n > b->max))
        return -1;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap != 0 ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->data = qbc_realloc(b->data, cap);
        b->cap = cap;
    }
    return 0;
}

int qbc_buf_append(qbc_buf_t *b, const void *p, size_t n)
{
    if (reserve(b, n) != 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int qbc_buf_printf(qbc_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || reserve(b, (size_t)n) != 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

size_t qbc_buf_write_cb(char *p, size_t size, size_t nmemb, void *ud)
{
    size_t n = size * nmemb;
    return qbc_buf_append(ud, p, n) == 0 ? n : 0; /* short: the transfer fails */
}

void qbc_buf_free(qbc_buf_t *b, int wipe)
{
    if (b->data != NULL && wipe)
        explicit_bzero(b->data, b->cap);
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
