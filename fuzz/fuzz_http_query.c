/*
 * fuzz_http_query.c — libFuzzer target for the API's query string and Last-Event-ID parsing
 * (api/request.c): qbc_api__query_param_str, qbc_api__query_check_str, qbc_api__parse_u64,
 * qbc_api__parse_last_event_id, and the h2o wrappers qbc_api__query_param and
 * qbc_api__query_check over a request whose path carries the query. Every byte of them
 * comes from the client.
 *
 * Input: byte 0 picks the size of the output buffers (1 to 256 bytes, allocated exactly so
 * that ASan sees a byte too far), byte 1 which endpoint's parameter names to look for
 * (the feed's, the entity listing's, the OAuth callback's); the rest is the query string
 * (the bytes after '?') and, on its own, a Last-Event-ID header value.
 * Invariants, against a reference model written here from the documented rules (split at
 * '&', the name ends at the first '=', the first match wins; '+' is a space, %XX a byte, any
 * other '%' stays):
 *   - a value is found exactly when the model finds it, and is the model's decoding: whole
 *     and NUL-terminated when it fits in outsz - 1 bytes, else QBC_ETOOBIG with the prefix
 *     that fits, NUL-terminated within outsz;
 *   - a value that decodes to a NUL byte (%00) is QBC_EMALFORMED, never 0, so that the C
 *     string handed out is always the whole value ("after=5%00junk" is not after=5);
 *   - qbc_api__parse_u64 accepts exactly the non-empty all-digit strings that strtoull reads
 *     without ERANGE, with strtoull's value; so does qbc_api__parse_last_event_id for values
 *     of at most 31 bytes without a NUL (and no other: "5\0junk" is not 5);
 *   - qbc_api__query_check_str fails exactly on the first unknown or repeated name, which it
 *     reports decoded in bad (NUL-terminated within badsz) with repeated right; its seen bits
 *     are the known names present (all of them on success, those before the failure
 *     otherwise), each of which qbc_api__query_param_str finds;
 *   - the h2o wrappers answer as the string functions do, and a path without '?' has no
 *     parameters.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "api_internal.h"

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond))                                                                                                   \
            qbc_fatal("fuzz_http_query: invariant broken: %s", #cond);                                                 \
    } while (0)

#define MAX_KNOWN 6

static const char *const feed_names[] = {"after", "limit", "wait", "realm", "entity", NULL};
static const char *const list_names[] = {"after_id", "limit", NULL};
static const char *const callback_names[] = {"state", "error", "code", "realmId", "state_hint", NULL};
static const char *const *const name_sets[] = {feed_names, list_names, callback_names};

/* the model: one parameter of the query, its raw name and raw value */
typedef struct {
    const char *name, *value;
    size_t name_len, value_len;
} model_param_t;

static int hexdigit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* the model's decoding of s into out (room for len bytes); returns the decoded length */
static size_t model_decode(const char *s, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '+') {
            out[n++] = ' ';
        } else if (s[i] == '%' && len - i >= 3 && hexdigit(s[i + 1]) >= 0 && hexdigit(s[i + 2]) >= 0) {
            out[n++] = (char)(hexdigit(s[i + 1]) * 16 + hexdigit(s[i + 2]));
            i += 2;
        } else {
            out[n++] = s[i];
        }
    }
    return n;
}

/* splits q at '&' into at most max parameters (empty ones included); returns their number */
static size_t model_split(const char *q, size_t len, model_param_t *ps, size_t max)
{
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= len && n < max; i++) {
        if (i < len && q[i] != '&')
            continue;
        if (i == len && start == len) /* nothing after the last '&' (or no query at all) */
            break;
        model_param_t *p = &ps[n++];
        const char *eq = memchr(q + start, '=', i - start);
        p->name = q + start;
        p->name_len = eq != NULL ? (size_t)(eq - p->name) : i - start;
        p->value = eq != NULL ? eq + 1 : q + i;
        p->value_len = (size_t)(q + i - p->value);
        start = i + 1;
    }
    return n;
}

/* parse_u64's contract, checked against strtoull */
static void check_u64(const char *s)
{
    uint64_t v = 12345;
    int rc = qbc_api__parse_u64(s, &v);
    size_t n = strlen(s);
    int digits = n > 0 && strspn(s, "0123456789") == n;
    errno = 0;
    unsigned long long want = digits ? strtoull(s, NULL, 10) : 0;
    int fits = digits && errno != ERANGE;
    CHECK((rc == 0) == fits);
    CHECK(rc == 0 ? v == want : v == 12345);
}

/* one name: the string function against the model, and the h2o wrapper against it */
static void check_param(const char *q, size_t len, const model_param_t *ps, size_t np, const char *name, size_t outsz,
                        h2o_req_t *req, char *scratch)
{
    char *out = malloc(outsz), *out2 = malloc(outsz);
    CHECK(out != NULL && out2 != NULL);
    int rc = qbc_api__query_param_str(q, len, name, out, outsz);
    size_t nl = strlen(name), i;
    for (i = 0; i < np; i++)
        if (ps[i].name_len == nl && memcmp(ps[i].name, name, nl) == 0)
            break;
    if (i == np) {
        CHECK(rc == QBC_ENOTFOUND);
    } else {
        size_t want = model_decode(ps[i].value, ps[i].value_len, scratch);
        if (want <= outsz - 1) {
            /* a value with a NUL inside is refused: the C string would not be the whole value */
            CHECK(rc == (memchr(scratch, '\0', want) == NULL ? 0 : QBC_EMALFORMED));
            CHECK(memcmp(out, scratch, want) == 0 && out[want] == '\0');
            check_u64(out);
        } else {
            CHECK(rc == QBC_ETOOBIG && memcmp(out, scratch, outsz - 1) == 0 && out[outsz - 1] == '\0');
        }
    }
    int rc2 = qbc_api__query_param(req, name, out2, outsz);
    CHECK(rc2 == rc);
    CHECK(rc == QBC_ENOTFOUND || strcmp(out, out2) == 0);
    free(out);
    free(out2);
}

static void check_names(const char *q, size_t len, const model_param_t *ps, size_t np, const char *const *known,
                        size_t badsz, h2o_req_t *req, char *scratch)
{
    char *bad = malloc(badsz), *bad2 = malloc(badsz), probe[1];
    unsigned seen = 0xdead, seen2;
    int repeated = 7, repeated2;
    CHECK(bad != NULL && bad2 != NULL);
    bad[0] = bad2[0] = '\0';
    int rc = qbc_api__query_check_str(q, len, known, &seen, bad, badsz, &repeated);

    /* the model: the first parameter with a non-empty segment that is unknown or repeated */
    unsigned want_seen = 0;
    size_t i, k, fail = np;
    for (i = 0; i < np && fail == np; i++) {
        if (ps[i].name_len == 0 && ps[i].value == ps[i].name) /* an empty segment names nothing */
            continue;
        for (k = 0; known[k] != NULL; k++)
            if (strlen(known[k]) == ps[i].name_len && memcmp(known[k], ps[i].name, ps[i].name_len) == 0)
                break;
        if (known[k] == NULL || (want_seen & (1u << k)) != 0)
            fail = i;
        else
            want_seen |= 1u << k;
    }
    CHECK(seen == want_seen);
    if (fail == np) {
        CHECK(rc == 0 && repeated == 0);
    } else {
        CHECK(rc == -1);
        size_t n = model_decode(ps[fail].name, ps[fail].name_len, scratch), m = n < badsz - 1 ? n : badsz - 1;
        CHECK(memchr(bad, '\0', badsz) != NULL && memcmp(bad, scratch, m) == 0 && bad[m] == '\0');
        for (k = 0; known[k] != NULL; k++)
            if (strlen(known[k]) == ps[fail].name_len && memcmp(known[k], ps[fail].name, ps[fail].name_len) == 0)
                break;
        CHECK(repeated == (known[k] != NULL));
    }
    /* each name seen is one qbc_api__query_param_str finds, and only those */
    for (k = 0; known[k] != NULL; k++) {
        int found = qbc_api__query_param_str(q, len, known[k], probe, sizeof(probe)) != QBC_ENOTFOUND;
        CHECK(!(seen & (1u << k)) || found);
        CHECK(rc != 0 || (seen & (1u << k)) != 0 || !found);
    }
    int rc2 = qbc_api__query_check(req, known, &seen2, bad2, badsz, &repeated2);
    CHECK(rc2 == rc && seen2 == seen && repeated2 == repeated && strcmp(bad, bad2) == 0);
    free(bad);
    free(bad2);
}

static void check_last_event_id(const char *v, size_t len)
{
    uint64_t got = 12345;
    int rc = qbc_api__parse_last_event_id(v, len, &got);
    char s[64];
    if (len >= 32 || memchr(v, '\0', len) != NULL) {
        CHECK(rc == -1 && got == 12345);
        return;
    }
    memcpy(s, v, len);
    s[len] = '\0';
    check_u64(s);
    uint64_t want = 54321;
    CHECK((qbc_api__parse_u64(s, &want) == 0) == (rc == 0));
    CHECK(rc == 0 ? got == want : got == 12345);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char prefix[] = "/v1/changes?";
    static h2o_req_t req, bare;

    if (size < 2)
        return 0;
    size_t outsz = 1 + (size_t)data[0];
    const char *const *known = name_sets[data[1] % 3];
    size_t len = size - 2;
    /* exactly len bytes, not terminated, so that a read past the end is caught */
    char *q = malloc(len > 0 ? len : 1), *path = malloc(sizeof(prefix) - 1 + len), *scratch = malloc(len + 1);
    CHECK(q != NULL && path != NULL && scratch != NULL);
    memcpy(q, data + 2, len);
    memcpy(path, prefix, sizeof(prefix) - 1);
    memcpy(path + sizeof(prefix) - 1, data + 2, len);
    req.path = h2o_iovec_init(path, sizeof(prefix) - 1 + len);
    req.query_at = sizeof(prefix) - 2;
    bare.path = h2o_iovec_init(H2O_STRLIT("/v1/changes"));
    bare.query_at = SIZE_MAX;

    model_param_t ps[64];
    size_t np = model_split(q, len, ps, 64);
    if (np < 64) { /* beyond 64 parameters the model stops short */
        for (size_t k = 0; known[k] != NULL; k++)
            check_param(q, len, ps, np, known[k], outsz, &req, scratch);
        /* a name from the input itself: the first parameter's, when it is a C string */
        if (np > 0 && ps[0].name_len < 64 && memchr(ps[0].name, '\0', ps[0].name_len) == NULL) {
            char name[64];
            memcpy(name, ps[0].name, ps[0].name_len);
            name[ps[0].name_len] = '\0';
            check_param(q, len, ps, np, name, outsz, &req, scratch);
        }
        check_names(q, len, ps, np, known, outsz, &req, scratch);
    }
    char out[4];
    unsigned seen;
    int repeated;
    CHECK(qbc_api__query_param(&bare, "after", out, sizeof(out)) == QBC_ENOTFOUND);
    CHECK(qbc_api__query_check(&bare, known, &seen, out, sizeof(out), &repeated) == 0 && seen == 0 && !repeated);
    check_last_event_id(q, len);

    free(q);
    free(path);
    free(scratch);
    return 0;
}
