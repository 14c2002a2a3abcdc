/*
 * framing.c — refuses HTTP/1 requests whose body framing is ambiguous (issue 11).
 *
 * h2o 2.2 frames a request body by the first of several Content-Length headers and drops
 * the others unseen (lib/http1.c: init_headers), and lets Transfer-Encoding override a
 * Content-Length. A proxy in front that reads the framing the other way (the last length,
 * or the length over the encoding) and qbcdc then disagree on where a request ends: the
 * rest of one body is read as the next request on the connection (request smuggling). RFC
 * 9112 section 6.3 wants such a request answered 400 and its connection closed, which is
 * what h2o does when its request parser fails.
 *
 * No handler can see the dropped headers, so the check sits where h2o parses: this file
 * defines picohttpparser's phr_parse_request, which libh2o calls through its PLT (it
 * exports the parser it bundles), so the executable's definition interposes on it. It
 * calls the library's own parser (dlsym RTLD_NEXT) and fails the parse (-1: h2o answers
 * 400 and closes) when the headers hold two Content-Lengths that differ, or a
 * Content-Length beside a Transfer-Encoding. Identical repeated lengths pass, as RFC 9112
 * allows. The signature and struct phr_header are picohttpparser's stable ABI (unchanged
 * since 2014; h2o 2.2.5 in Debian 12). tests/integration/test_ingress.py checks it works:
 * if the interposition stopped taking effect, that test fails, not the service.
 */
#include <dlfcn.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>
#include "api_internal.h"

struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

typedef int (*phr_parse_request_fn)(const char *buf, size_t len, const char **method, size_t *method_len,
                                    const char **path, size_t *path_len, int *minor_version, struct phr_header *headers,
                                    size_t *num_headers, size_t last_len);

int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len, const char **path,
                      size_t *path_len, int *minor_version, struct phr_header *headers, size_t *num_headers,
                      size_t last_len);

static int name_is(const struct phr_header *h, const char *name, size_t n)
{
    return h->name != NULL && h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

/* the value with surrounding blanks trimmed */
static void trimmed(const struct phr_header *h, const char **v, size_t *n)
{
    const char *b = h->value, *e = h->value + h->value_len;
    while (b < e && (*b == ' ' || *b == '\t'))
        b++;
    while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *v = b;
    *n = (size_t)(e - b);
}

uint64_t qbc_api__ambiguous_framing;

int qbc_api__framing_ambiguous(const void *hdrs, size_t n)
{
    const struct phr_header *headers = hdrs;
    const char *cl = NULL;
    size_t cl_len = 0;
    int te = 0;
    for (size_t i = 0; i < n; i++) {
        if (name_is(&headers[i], "transfer-encoding", 17)) {
            te = 1;
        } else if (name_is(&headers[i], "content-length", 14)) {
            const char *v;
            size_t vn;
            trimmed(&headers[i], &v, &vn);
            if (cl != NULL && (vn != cl_len || memcmp(v, cl, vn) != 0))
                return 1; /* two lengths that differ */
            cl = v;
            cl_len = vn;
        }
    }
    return te && cl != NULL; /* a length and an encoding */
}

int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len, const char **path,
                      size_t *path_len, int *minor_version, struct phr_header *headers, size_t *num_headers,
                      size_t last_len)
{
    static phr_parse_request_fn real;
    if (real == NULL) {
        real = (phr_parse_request_fn)dlsym(RTLD_NEXT, "phr_parse_request");
        if (real == NULL)
            qbc_fatal("phr_parse_request: libh2o's request parser is not found (dlsym: %s)", dlerror());
    }
    int rc = real(buf, len, method, method_len, path, path_len, minor_version, headers, num_headers, last_len);
    if (rc > 0 && qbc_api__framing_ambiguous(headers, *num_headers)) {
        __atomic_add_fetch(&qbc_api__ambiguous_framing, 1, __ATOMIC_RELAXED);
        return -1;
    }
    return rc;
}
