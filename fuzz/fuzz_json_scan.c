/*
 * fuzz_json_scan.c — libFuzzer target for common/json_scan.c, the scanner every untrusted
 * JSON byte goes through (webhooks in jansson's mode, QBO answers in RFC 8259's).
 *
 * The input is scanned under both rules. Beyond "does not crash", on success:
 *   - every token lies within the text (start <= end <= len) and every `next` points
 *     forwards, at most to n_tok; a container's contents are the tokens before its next;
 *   - RFC 8259 accepts whatever jansson's rules accept (they only add restrictions);
 *   - qbc_json_copy_compact() of the root rescans (RFC mode) to as many tokens of the
 *     same types, and compacting that copy again gives the same bytes (idempotent);
 *   - qbc_json_unescape() never lengthens a string.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "json_scan.h"

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond))                                                                                                   \
            qbc_fatal("fuzz_json_scan: invariant broken: %s", #cond);                                                  \
    } while (0)

/* the tape's shape: offsets within the text, links forward and within bounds */
static void check_tape(const qbc_json_doc_t *doc, size_t len)
{
    CHECK(doc->n_tok >= 1);
    CHECK(doc->tok[0].type == QBC_JSON_OBJECT || doc->tok[0].type == QBC_JSON_ARRAY);
    CHECK(doc->tok[0].next == doc->n_tok);
    for (size_t i = 0; i < doc->n_tok; i++) {
        const qbc_json_tok_t *t = &doc->tok[i];
        CHECK(t->type >= QBC_JSON_OBJECT && t->type <= QBC_JSON_NULL);
        CHECK(t->start <= t->end && t->end <= len);
        CHECK(t->next > i && t->next <= doc->n_tok);
        if (t->type == QBC_JSON_STRING)
            CHECK(t->start >= 1 && t->start + t->len + 1 == t->end);
        else if (t->type != QBC_JSON_OBJECT && t->type != QBC_JSON_ARRAY)
            CHECK(t->start + t->len == t->end && t->next == i + 1);
        if (t->type == QBC_JSON_OBJECT || t->type == QBC_JSON_ARRAY) {
            /* its len children, walked by next, end exactly where it does */
            size_t k = i + 1, n = 0, step = t->type == QBC_JSON_OBJECT ? 2 : 1;
            while (k < t->next) {
                CHECK(k + step - 1 < t->next);
                if (step == 2)
                    CHECK(doc->tok[k].type == QBC_JSON_STRING && doc->tok[k].next == k + 1);
                k = doc->tok[k + step - 1].next;
                n++;
            }
            CHECK(k == t->next && n == t->len);
        }
    }
}

/* decoding never lengthens; a decoded string holds no NUL (\u0000 is refused) */
static void check_unescape(const qbc_json_doc_t *doc, const char *text)
{
    for (size_t i = 0; i < doc->n_tok; i++) {
        const qbc_json_tok_t *t = &doc->tok[i];
        if (t->type != QBC_JSON_STRING || !(t->flags & QBC_JSON_ESCAPED))
            continue;
        char *dst = malloc(t->len ? t->len : 1);
        size_t n = qbc_json_unescape(text + t->start, t->len, dst);
        CHECK(n <= t->len);
        CHECK(memchr(dst, '\0', n) == NULL);
        free(dst);
    }
}

/* the compact copy is JSON with the same tokens, and a fixed point of compaction */
static void check_compact(const qbc_json_doc_t *doc, const char *text)
{
    qbc_json_doc_t again;
    qbc_json_error_t err;
    size_t n1, n2;
    char *c1 = qbc_json_copy_compact(doc, text, 0, &n1), *c2;

    CHECK(c1[n1] == '\0' && n1 <= doc->tok[0].end - doc->tok[0].start);
    qbc_json_init(&again, NULL, 0);
    CHECK(qbc_json_scan(&again, c1, n1, QBC_JSON_RFC8259, &err) == 0);
    CHECK(again.n_tok == doc->n_tok);
    for (size_t i = 0; i < doc->n_tok; i++) {
        CHECK(again.tok[i].type == doc->tok[i].type);
        CHECK(again.tok[i].len == doc->tok[i].len);
        CHECK(again.tok[i].next == doc->tok[i].next);
    }
    c2 = qbc_json_copy_compact(&again, c1, 0, &n2);
    CHECK(n2 == n1 && memcmp(c1, c2, n1) == 0);
    free(c2);
    free(c1);
    qbc_json_dispose(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a copy of exactly size bytes, so that ASan catches a read past the text */
    char *text = malloc(size ? size : 1);
    qbc_json_tok_t small[16];
    qbc_json_doc_t doc;
    qbc_json_error_t err;
    int accepted[2];

    memcpy(text, data, size);
    for (int mode = 0; mode < 2; mode++) {
        int flags = mode ? QBC_JSON_RFC8259 : 0;
        /* mode 0 starts on a small caller buffer, so the move to the heap is exercised too */
        qbc_json_init(&doc, mode ? NULL : small, mode ? 0 : sizeof(small) / sizeof(small[0]));
        int rc = qbc_json_scan(&doc, text, size, flags, &err);
        CHECK(rc == 0 || rc == QBC_EMALFORMED);
        accepted[mode] = rc == 0;
        if (rc == 0) {
            check_tape(&doc, size);
            check_unescape(&doc, text);
            check_compact(&doc, text);
        } else {
            CHECK(err.what != NULL && err.pos <= size);
        }
        qbc_json_dispose(&doc);
    }
    /* jansson's rules only restrict RFC 8259's (numbers' range), except the NUL quirk */
    if (accepted[0] && memchr(text, '\0', size) == NULL)
        CHECK(accepted[1]);
    free(text);
    return 0;
}
