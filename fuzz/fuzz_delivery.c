/*
 * fuzz_delivery.c — libFuzzer target for what push delivery reads from outside:
 * qbc_delivery_retry_after() (a receiver's Retry-After header, any bytes a subscriber's
 * server sends), qbc_delivery_secret_key() (a secret given to POST/PATCH
 * /admin/subscriptions) and qbc_delivery_schedule_parse() (QBCDC_DELIVERY_SCHEDULE).
 *
 * Input layout: byte 0 picks the parser, the rest is its input. Invariants checked:
 *   - Retry-After: 0, or a whole number of seconds in ms (< 10^9 s), and exactly what a plain
 *     reading of "spaces, 1 to 9 digits, spaces" gives (an oracle written here);
 *   - a secret's key: on success between QBC_WHSEC_KEY_MIN and QBC_WHSEC_KEY_MAX bytes, and
 *     the same with or without the "whsec_" prefix;
 *   - a schedule: on success 1 to QBC_DELIVERY_SCHEDULE_MAX items, each within 7 days, and
 *     qbc_delivery_schedule_next() gives -1 exactly once the items are used up.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common.h"
#include "delivery.h"

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond))                                                                                                   \
            qbc_fatal("fuzz_delivery: invariant broken: %s", #cond);                                                   \
    } while (0)

static int64_t retry_after_oracle(const char *v, size_t len)
{
    size_t a = 0, b = len;
    while (a < len && (v[a] == ' ' || v[a] == '\t'))
        a++;
    while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t' || v[b - 1] == '\r' || v[b - 1] == '\n'))
        b--;
    if (b == a || b - a > 9)
        return 0;
    int64_t s = 0;
    for (size_t i = a; i < b; i++) {
        if (v[i] < '0' || v[i] > '9')
            return 0;
        s = s * 10 + (v[i] - '0');
    }
    return s * 1000;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned pick = data[0] % 3;
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    if (pick == 0) {
        int64_t ms = qbc_delivery_retry_after(in, len);
        CHECK(ms >= 0 && ms < 1000000000LL * 1000 && ms % 1000 == 0);
        CHECK(ms == retry_after_oracle(in, len));
        return 0;
    }
    char *text = malloc(len + 7);
    memcpy(text, in, len);
    text[len] = '\0';
    if (pick == 1) {
        unsigned char key[QBC_WHSEC_KEY_MAX], key2[QBC_WHSEC_KEY_MAX];
        size_t klen = 0, klen2 = 0;
        int rc = qbc_delivery_secret_key(text, key, &klen);
        if (rc == 0)
            CHECK(klen >= QBC_WHSEC_KEY_MIN && klen <= QBC_WHSEC_KEY_MAX);
        else
            CHECK(rc == QBC_EMALFORMED);
        if (strlen(text) == len && strncmp(text, "whsec_", 6) != 0) { /* the prefix changes nothing */
            char *prefixed = malloc(len + 7);
            memcpy(prefixed, "whsec_", 6);
            memcpy(prefixed + 6, text, len + 1);
            int rc2 = qbc_delivery_secret_key(prefixed, key2, &klen2);
            CHECK(rc2 == rc);
            if (rc == 0)
                CHECK(klen2 == klen && memcmp(key, key2, klen) == 0);
            free(prefixed);
        }
    } else {
        qbc_delivery_schedule_t s;
        if (qbc_delivery_schedule_parse(text, &s) == 0) {
            CHECK(s.n >= 1 && s.n <= QBC_DELIVERY_SCHEDULE_MAX);
            for (unsigned i = 0; i < s.n; i++) {
                int64_t d = qbc_delivery_schedule_next(&s, i, 0, 0.5);
                CHECK(d >= 0 && d <= 7LL * 86400 * 1000 * 11 / 10 + 1);
            }
            CHECK(qbc_delivery_schedule_next(&s, s.n, 0, 0.5) == -1);
        }
    }
    free(text);
    return 0;
}
