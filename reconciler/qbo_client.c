/*
 * qbo_client.c — building QBO API requests: the Id IN query (qbo-facts §3), entity-read
 * URLs (§9), minorversion on every call (§8).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <jansson.h>
#include "rec_internal.h"

/* name lists: SELECT returns active records only unless the query mentions Active (§3) */
static const char *const namelist_entities[] = {
    "Account", "Budget",        "Class",   "Customer", "Department", "Employee",
    "Item",    "PaymentMethod", "TaxCode", "TaxRate",  "Term",       "Vendor",
};

int qbc_rec_entity_ok(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++)
        if (!isalpha((unsigned char)s[n]))
            return 0;
    return n > 0 && n < QBC_ENTITY_MAX;
}

int qbc_rec_id_ok(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        unsigned char c = (unsigned char)s[n];
        if (!(isalnum(c) || c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return n > 0 && n < QBC_ID_MAX;
}

int qbc_rec_is_namelist(const char *entity)
{
    for (size_t i = 0; i < sizeof(namelist_entities) / sizeof(namelist_entities[0]); i++)
        if (strcmp(entity, namelist_entities[i]) == 0)
            return 1;
    return 0;
}

char *qbc_rec_build_query(const char *entity, const char *const *ids, size_t n)
{
    size_t cap = 128 + strlen(entity);
    for (size_t i = 0; i < n; i++)
        cap += strlen(ids[i]) + 3;
    char *q = qbc_alloc(cap);
    size_t len = (size_t)snprintf(q, cap, "SELECT * FROM %s WHERE Id IN (", entity);
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(q + len, cap - len, "%s'%s'", i ? "," : "", ids[i]);
    snprintf(q + len, cap - len, ")%s MAXRESULTS 1000",
             qbc_rec_is_namelist(entity) ? " AND Active IN (true,false)" : "");
    return q;
}

char *qbc_rec_query_url(const char *api_base, const char *realm, long minorversion)
{
    char *u = NULL;
    if (asprintf(&u, "%s/v3/company/%s/query?minorversion=%ld", api_base, realm, minorversion) < 0)
        qbc_fatal("out of memory");
    return u;
}

char *qbc_rec_read_url(const char *api_base, const char *realm, const char *entity, const char *id, long minorversion)
{
    char lower[QBC_ENTITY_MAX];
    size_t i = 0;
    for (; entity[i] != '\0' && i + 1 < sizeof(lower); i++)
        lower[i] = (char)tolower((unsigned char)entity[i]);
    lower[i] = '\0';
    char *u = NULL;
    if (asprintf(&u, "%s/v3/company/%s/%s/%s?minorversion=%ld", api_base, realm, lower, id, minorversion) < 0)
        qbc_fatal("out of memory");
    return u;
}

char *qbc_rec_batch_url(const char *api_base, const char *realm, long minorversion)
{
    char *u = NULL;
    if (asprintf(&u, "%s/v3/company/%s/batch?minorversion=%ld", api_base, realm, minorversion) < 0)
        qbc_fatal("out of memory");
    return u;
}

char *qbc_rec_build_batch(const char *const *queries, size_t n)
{
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++) {
        char bid[24];
        snprintf(bid, sizeof(bid), "%zu", i);
        json_array_append_new(items, json_pack("{s:s,s:s}", "bId", bid, "Query", queries[i]));
    }
    json_t *root = json_pack("{s:o}", "BatchItemRequest", items);
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (s == NULL)
        qbc_fatal("out of memory");
    return s;
}

/* "YYYY-MM-DDTHH:MM:SS.mmm" + offset: an explicit offset, never a bare local time (qbo-facts §11) */
static void time_with_offset(int64_t ns, const char *offset, char *out, size_t size)
{
    char ts[QBC_TIME_BUFSZ];
    qbc_time_format(ns, ts);
    size_t n = strlen(ts);
    if (n > 0 && ts[n - 1] == 'Z')
        ts[n - 1] = '\0';
    snprintf(out, size, "%s%s", ts, offset);
}

char *qbc_rec_cdc_url(const char *api_base, const char *realm, const char *entities, int64_t since_ns,
                      long minorversion)
{
    char since[QBC_TIME_BUFSZ + 8];
    /* milliseconds, rounded down: asking from slightly earlier only repeats what the dedupe drops */
    time_with_offset(since_ns - ((since_ns % 1000000) + 1000000) % 1000000, "%2B00:00", since, sizeof(since));
    char *u = NULL;
    if (asprintf(&u, "%s/v3/company/%s/cdc?entities=%s&changedSince=%s&minorversion=%ld", api_base, realm, entities,
                 since, minorversion) < 0)
        qbc_fatal("out of memory");
    return u;
}

char *qbc_rec_backfill_query(const char *entity, int64_t since_ns, uint64_t start_position)
{
    return qbc_rec_window_query(entity, since_ns, 0, start_position);
}

char *qbc_rec_window_query(const char *entity, int64_t since_ns, int64_t until_ns, uint64_t start_position)
{
    char since[QBC_TIME_BUFSZ + 8], until[QBC_TIME_BUFSZ + 8], where[240] = "";
    int nl = qbc_rec_is_namelist(entity);
    size_t len = 0;
    if (since_ns > 0) {
        time_with_offset(since_ns - ((since_ns % 1000000) + 1000000) % 1000000, "+00:00", since, sizeof(since));
        len += (size_t)snprintf(where, sizeof(where), " WHERE MetaData.LastUpdatedTime >= '%s'", since);
    }
    if (until_ns > 0) { /* an exclusive bound: round up to a millisecond so nothing before it is left out */
        time_with_offset(until_ns + (1000000 - until_ns % 1000000) % 1000000, "+00:00", until, sizeof(until));
        len += (size_t)snprintf(where + len, sizeof(where) - len, "%s MetaData.LastUpdatedTime < '%s'",
                                len ? " AND" : " WHERE", until);
    }
    if (nl)
        snprintf(where + len, sizeof(where) - len, "%s Active IN (true,false)", len ? " AND" : " WHERE");
    char *q = NULL;
    if (asprintf(&q, "SELECT * FROM %s%s ORDERBY Id STARTPOSITION %llu MAXRESULTS %u", entity, where,
                 (unsigned long long)start_position, REC_QUERY_PAGE) < 0)
        qbc_fatal("out of memory");
    return q;
}
