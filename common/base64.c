/*
 * base64.c — RFC 4648 standard alphabet, padded. Small enough to own rather than
 * to route through OpenSSL's BIO machinery, and strict on decode: a signature
 * header with stray characters is simply wrong.
 */
#include "common.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t qbc_base64_encode(const void *src, size_t len, char *dst)
{
    const unsigned char *s = src;
    size_t i, o = 0;

    for (i = 0; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        dst[o++] = alphabet[v >> 18 & 63];
        dst[o++] = alphabet[v >> 12 & 63];
        dst[o++] = alphabet[v >> 6 & 63];
        dst[o++] = alphabet[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < len ? (uint32_t)s[i + 1] << 8 : 0);
        dst[o++] = alphabet[v >> 18 & 63];
        dst[o++] = alphabet[v >> 12 & 63];
        dst[o++] = i + 1 < len ? alphabet[v >> 6 & 63] : '=';
        dst[o++] = '=';
    }
    dst[o] = '\0';
    return o;
}

static int decode_char(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int qbc_base64_decode(const char *src, size_t len, void *dst, size_t *out_len)
{
    unsigned char *d = dst;
    size_t o = 0;

    if (len % 4 != 0)
        return QBC_EMALFORMED;
    for (size_t i = 0; i < len; i += 4) {
        int v[4], pad = 0;
        for (int j = 0; j < 4; j++) {
            char c = src[i + j];
            if (c == '=' && i + 4 == len && j >= 2) {
                v[j] = 0;
                pad++;
            } else if (pad != 0 || (v[j] = decode_char(c)) < 0) {
                return QBC_EMALFORMED;
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        /* bits beyond the last byte must be zero (RFC 4648 §3.5): exactly one text per byte string */
        if ((pad == 1 && (w & 0xff) != 0) || (pad == 2 && (w & 0xffff) != 0))
            return QBC_EMALFORMED;
        d[o++] = (unsigned char)(w >> 16);
        if (pad < 2)
            d[o++] = (unsigned char)(w >> 8);
        if (pad < 1)
            d[o++] = (unsigned char)w;
    }
    *out_len = o;
    return 0;
}
