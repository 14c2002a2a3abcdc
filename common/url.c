/*
 * url.c — percent-encoding for query strings and form bodies (RFC 3986 unreserved
 * characters pass, everything else becomes %XX), and the matching decoding.
 */
#include "common.h"

size_t qbc_url_encode(const char *s, char *out, size_t outsz)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;

    if (outsz == 0)
        return 0;
    for (; *s && n + 4 < outsz; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
            c == '.' || c == '~') {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    out[n] = '\0';
    return n;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int qbc_url_decode(const char *s, size_t len, char *out, size_t outsz, size_t *out_len)
{
    size_t n = 0;
    int rc = 0;

    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            c = (char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
            i += 2;
        }
        if (n + 1 >= outsz) {
            rc = QBC_ETOOBIG;
            break;
        }
        out[n++] = c;
    }
    if (outsz > 0)
        out[n] = '\0';
    if (out_len != NULL)
        *out_len = n;
    return rc;
}
