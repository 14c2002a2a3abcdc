/*
 * request.c — small helpers for answering and reading requests: JSON answers (every
 * JSON answer of api/ that holds text from outside goes through jansson, here or in
 * the endpoint files, so it is escaped), bearer authorisation, query parameters, path
 * segments.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include "api_internal.h"

void qbc_api__respond_json(h2o_req_t *req, int status, const char *reason, const char *body)
{
    size_t len = strlen(body);
    req->res.status = status;
    req->res.reason = reason;
    req->res.content_length = len; /* otherwise h2o answers HTTP/1.1 chunked */
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_send_inline(req, body, len);
}

void qbc_api__respond_error(h2o_req_t *req, int status, const char *reason, const char *code, const char *message)
{
    /* through jansson like every other answer: a message may quote the client (a parameter's name) */
    json_t *o = json_pack("{s:s,s:s}", "error", code, "message", message);
    if (o == NULL) /* not UTF-8: say what it was about without the quote */
        o = json_pack("{s:s,s:s}", "error", code, "message", "the request has a problem that cannot be quoted");
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    qbc_api__respond_json(req, status, reason, text);
    free(text);
}

int qbc_api__require_bearer(h2o_req_t *req, const char *want, const char *what)
{
    char msg[128];

    if (want == NULL || want[0] == '\0') {
        snprintf(msg, sizeof(msg), "%s is disabled: no bearer token is configured for it", what);
        qbc_api__respond_error(req, 403, "Forbidden", "disabled", msg);
        return -1;
    }
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i >= 0) {
        h2o_iovec_t v = req->headers.entries[i].value;
        size_t wl = strlen(want);
        if (v.len == 7 + wl && h2o_lcstris(v.base, 7, H2O_STRLIT("bearer ")) &&
            CRYPTO_memcmp(v.base + 7, want, wl) == 0)
            return 0;
    }
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL, H2O_STRLIT("Bearer"));
    qbc_api__respond_error(req, 401, "Unauthorized", "unauthorized",
                           i >= 0 ? "wrong bearer token" : "bearer token required");
    return -1;
}

/* the query string of req (the bytes after '?'), or NULL (len 0) when it has none */
static const char *query_of(h2o_req_t *req, size_t *len)
{
    if (req->query_at == SIZE_MAX) {
        *len = 0;
        return NULL;
    }
    *len = req->path.len - req->query_at - 1;
    return req->path.base + req->query_at + 1;
}

int qbc_api__query_param_str(const char *query, size_t len, const char *name, char *out, size_t outsz)
{
    if (len == 0) /* also when query is NULL: no arithmetic on it */
        return QBC_ENOTFOUND;
    const char *p = query, *end = query + len;
    size_t nl = strlen(name);
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *ke = eq != NULL ? eq : pe;
        if ((size_t)(ke - p) == nl && memcmp(p, name, nl) == 0) {
            const char *v = eq != NULL ? eq + 1 : pe;
            size_t n;
            if (qbc_url_decode(v, (size_t)(pe - v), out, outsz, &n) != 0)
                return QBC_ETOOBIG;
            /* "after=5%00junk" is not after=5: the C string would end before the value does */
            return memchr(out, '\0', n) == NULL ? 0 : QBC_EMALFORMED;
        }
        p = pe + 1;
    }
    return QBC_ENOTFOUND;
}

int qbc_api__query_param(h2o_req_t *req, const char *name, char *out, size_t outsz)
{
    size_t len;
    const char *query = query_of(req, &len);
    return qbc_api__query_param_str(query, len, name, out, outsz);
}

int qbc_api__param(h2o_req_t *req, const char *name, char *out, size_t outsz)
{
    int rc = qbc_api__query_param(req, name, out, outsz);
    if (rc == QBC_ENOTFOUND)
        return 0;
    if (rc == 0)
        return 1;
    char msg[160];
    if (rc == QBC_EMALFORMED)
        snprintf(msg, sizeof(msg), "parameter %s holds a NUL byte (%%00)", name);
    else
        snprintf(msg, sizeof(msg), "parameter %s is too long (at most %zu bytes)", name, outsz - 1);
    qbc_api__respond_error(req, 400, "Bad Request", "bad_parameter", msg);
    return -1;
}

int qbc_api__parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (*s == '\0')
        return -1;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

int qbc_api__parse_last_event_id(const char *v, size_t len, uint64_t *out)
{
    char s[32];
    if (len >= sizeof(s) || memchr(v, '\0', len) != NULL) /* "5\0junk" is not 5 */
        return -1;
    memcpy(s, v, len);
    s[len] = '\0';
    return qbc_api__parse_u64(s, out);
}

int qbc_api__query_check_str(const char *query, size_t len, const char *const *known, unsigned *seen, char *bad,
                             size_t badsz, int *repeated)
{
    *seen = 0;
    *repeated = 0;
    if (len == 0)
        return 0;
    const char *p = query, *end = query + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *ke = eq != NULL ? eq : pe;
        size_t nl = (size_t)(ke - p), i;
        if (pe > p) { /* "a=1&&b=2" and a trailing '&' name nothing */
            for (i = 0; known[i] != NULL; i++)
                if (strlen(known[i]) == nl && memcmp(p, known[i], nl) == 0)
                    break;
            if (known[i] == NULL || (*seen & (1u << i)) != 0) {
                qbc_url_decode(p, nl, bad, badsz, NULL);
                *repeated = known[i] != NULL;
                return -1;
            }
            *seen |= 1u << i;
        }
        p = pe + 1;
    }
    return 0;
}

int qbc_api__query_check(h2o_req_t *req, const char *const *known, unsigned *seen, char *bad, size_t badsz,
                         int *repeated)
{
    size_t len;
    const char *query = query_of(req, &len);
    return qbc_api__query_check_str(query, len, known, seen, bad, badsz, repeated);
}

int qbc_api__path_segments(h2o_req_t *req, size_t skip, h2o_iovec_t *seg, size_t max)
{
    const char *p = req->path_normalized.base, *end = p + req->path_normalized.len;
    size_t n = 0, seen = 0;

    while (p < end) {
        while (p < end && *p == '/')
            p++;
        if (p == end)
            break;
        const char *s = p;
        while (p < end && *p != '/')
            p++;
        if (seen++ < skip)
            continue;
        if (n == max)
            return -1;
        seg[n++] = h2o_iovec_init(s, (size_t)(p - s));
    }
    return (int)n;
}

void qbc_api__respond_obj(h2o_req_t *req, int status, const char *reason, json_t *o)
{
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    qbc_api__respond_json(req, status, reason, text);
    free(text);
}

void qbc_api__respond_list(h2o_req_t *req, const char *key, json_t *list, int scan_rc)
{
    if (scan_rc != 0) {
        json_decref(list);
        qbc_api__respond_error(req, 503, "Service Unavailable", "store_unavailable", "cannot read the store");
        return;
    }
    qbc_api__respond_obj(req, 200, "OK", json_pack("{s:o}", key, list));
}
