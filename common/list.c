/*
 * list.c — comma-separated lists of short names (entity lists, backfill anchors,
 * the entities a CDC commit audits): walk, look up, append.
 */
#include <string.h>
#include "common.h"

const char *qbc_list_next(const char *p, const char **item, size_t *len)
{
    if (p == NULL || *p == '\0')
        return NULL;
    const char *end = strchr(p, ',');
    *item = p;
    *len = end ? (size_t)(end - p) : strlen(p);
    return end ? end + 1 : p + *len;
}

int qbc_list_has(const char *list, const char *item)
{
    size_t want = strlen(item), len;
    const char *e;
    for (const char *p = list; (p = qbc_list_next(p, &e, &len)) != NULL;)
        if (len == want && memcmp(e, item, len) == 0)
            return 1;
    return 0;
}

int qbc_list_add(char *buf, size_t bufsz, const char *item)
{
    size_t have = strlen(buf), n = strlen(item), comma = have > 0;
    if (have + comma + n + 1 > bufsz)
        return -1;
    if (comma)
        buf[have++] = ',';
    memcpy(buf + have, item, n + 1);
    return 0;
}
