/*
 * json_scan.h — qbcdc's strict JSON scanner, for untrusted bytes: Intuit's webhooks
 * (ingress/payload.c) and QBO's API answers (reconciler/response.c).
 *
 * One pass over the text validates it as RFC 8259 JSON with exactly the rules jansson
 * 2.14's json_loadb(text, len, 0, ...) applies, and records every value as a token in a
 * flat array ("tape"): a container's contents follow it, and each token knows where the
 * value after it starts, so a reader walks members and skips subtrees in O(1) per step.
 * Nothing is unescaped or converted while scanning: a string token points at its raw
 * bytes, and qbc_json_unescape() decodes the few the reader needs. Every value also
 * knows where it ends, so a reader can pass a subtree on as the exact bytes it was sent
 * in (qbc_json_copy_compact()): QBO's entities reach the feed without their numbers ever
 * becoming doubles.
 *
 * Two sets of rules. By default, jansson 2.14's with no decoding flags (the webhook path
 * keeps exactly the bodies jansson kept); with QBC_JSON_RFC8259, RFC 8259's, which differ
 * only in numbers and NUL bytes: any integer and any real is a number, whatever its
 * magnitude (QBO's amounts are passed on as text, never converted), and no NUL byte is
 * skipped. jansson's rules:
 *   - the root is an object or an array; only ' ', \t, \n and \r may surround it;
 *   - strings hold well-formed UTF-8 (no overlong forms, surrogates or code points past
 *     U+10FFFF), no raw bytes below 0x20, only the escapes \" \\ \/ \b \f \n \r \t \uXXXX;
 *     a \u escape of a surrogate must be a high one followed by a low one, and \u0000 is
 *     refused (in keys too);
 *   - numbers have no leading zeros, no '+', and digits after '.' and 'e'; a number without
 *     fraction or exponent is an integer and must fit int64_t; any other must not overflow
 *     a double (underflow is fine);
 *   - no trailing commas; duplicate keys are allowed (the reader decides: jansson keeps
 *     the last value, at the first key's position);
 *   - a value may be nested at most QBC_JSON_MAX_DEPTH deep, the root counting as 1;
 *   - one NUL byte right after a number or a literal is skipped (a quirk of jansson's
 *     lexer: see skip_nul()); any other NUL byte makes the text invalid.
 * Nesting is tracked in the tape itself (an open container's `next` links to its parent),
 * so the C stack does not grow with the input.
 */
#ifndef QBC_JSON_SCAN_H
#define QBC_JSON_SCAN_H

#include <stddef.h>
#include "common.h"

/** jansson's JSON_PARSER_MAX_DEPTH: values nested deeper than this make the text invalid */
#define QBC_JSON_MAX_DEPTH 2048

/** token types */
enum {
    QBC_JSON_OBJECT = 1,
    QBC_JSON_ARRAY,
    QBC_JSON_STRING,
    QBC_JSON_INTEGER,
    QBC_JSON_REAL,
    QBC_JSON_TRUE,
    QBC_JSON_FALSE,
    QBC_JSON_NULL,
};

/** token flags */
#define QBC_JSON_ESCAPED 0x1  /**< string: holds backslash escapes (decode with qbc_json_unescape) */
#define QBC_JSON_NEGATIVE 0x2 /**< integer: starts with '-' (which "-0" does too) */

/** qbc_json_scan() flags */
#define QBC_JSON_RFC8259 0x1 /**< RFC 8259's number rules instead of jansson's, and no NUL quirk */

/** one value (or object key) of the scanned text. */
typedef struct st_qbc_json_tok_t {
    /**
     * byte offset in the text: of the byte after the opening quote for a string, of the
     * first byte otherwise
     */
    size_t start;
    /**
     * a string's raw length in bytes between its quotes, a number's or literal's length
     * in bytes, or a container's number of elements (array) or members (object)
     */
    size_t len;
    /**
     * index of the token after this value and everything inside it. An object's tokens
     * are key, value, key, value, ...; a key's next is the index of its value.
     */
    size_t next;
    /** byte offset just past the value: past a string's closing quote, a container's closing bracket */
    size_t end;
    unsigned char type;  /**< QBC_JSON_OBJECT ... QBC_JSON_NULL */
    unsigned char flags; /**< QBC_JSON_ESCAPED, QBC_JSON_NEGATIVE */
} qbc_json_tok_t;

/** the tape of one scanned text. */
typedef struct st_qbc_json_doc_t {
    qbc_json_tok_t *tok; /**< n_tok tokens; tok[0] is the root */
    size_t n_tok;
    size_t _cap;
    qbc_json_tok_t *_inline; /**< the caller's buffer; tok is malloc'd once the text outgrows it */
    size_t _inline_cap;
} qbc_json_doc_t;

/** why a text is not JSON: static text and the byte offset where it was noticed. */
typedef struct st_qbc_json_error_t {
    const char *what;
    size_t pos;
} qbc_json_error_t;

/**
 * prepares doc to use buf (n tokens; may be NULL and 0) before it needs the heap.
 * A compact webhook needs about one token per 10 bytes of text.
 */
void qbc_json_init(qbc_json_doc_t *doc, qbc_json_tok_t *buf, size_t n);

/**
 * validates text as one JSON document and fills doc's tape. Tokens refer to text by
 * offset: text must stay unchanged while they are read.
 * @param flags 0 (jansson's rules) or QBC_JSON_RFC8259
 * @return 0; QBC_EMALFORMED when text is not JSON (err says why: the tape is then
 *         incomplete and must not be read); -ENOMEM when the tape could not grow (err
 *         says "out of memory")
 */
int qbc_json_scan(qbc_json_doc_t *doc, const char *text, size_t len, int flags, qbc_json_error_t *err);

/** frees what the tape allocated (not the caller's buffer); doc may then be scanned again. */
void qbc_json_dispose(qbc_json_doc_t *doc);

/**
 * decodes the escapes of a string that qbc_json_scan() accepted (raw, len: its bytes
 * between the quotes) into dst, which must hold len bytes: decoding never lengthens.
 * Nothing is NUL-terminated.
 * @return the decoded length in bytes
 */
size_t qbc_json_unescape(const char *raw, size_t len, char *dst);

/** returned by the readers below for "no such value" */
#define QBC_JSON_NONE ((size_t)-1)

/**
 * the value of key (len bytes, compared with the key's unescaped text) in the object at
 * token obj of a scanned text. When the key repeats, its last value, as jansson keeps.
 * @return the value's token index, or QBC_JSON_NONE when obj is no object or lacks the key
 */
size_t qbc_json_get(const qbc_json_doc_t *doc, const char *text, size_t obj, const char *key, size_t len);

/**
 * whether token i is a string whose unescaped text equals s (len bytes).
 */
int qbc_json_str_eq(const qbc_json_doc_t *doc, const char *text, size_t i, const char *s, size_t len);

/**
 * copies a string token's unescaped text (or an integer's digits) into dst, NUL-terminated,
 * truncated to size - 1 bytes.
 * @return 0, or QBC_EINVAL when token i is neither (dst is then "")
 */
int qbc_json_str_copy(const qbc_json_doc_t *doc, const char *text, size_t i, char *dst, size_t size);

/**
 * the bytes of the value at token i as they stand in text, less the whitespace between
 * tokens: every string, number and literal is kept byte for byte (escapes, exponents,
 * trailing zeros, "-0.0", numbers of any size), in order, duplicates included. A value
 * sent pretty-printed becomes one line, so it can stand in a Server-Sent Event.
 * @return a malloc'd copy, NUL-terminated after its *out_len bytes (dies on OOM)
 */
char *qbc_json_copy_compact(const qbc_json_doc_t *doc, const char *text, size_t i, size_t *out_len);

#endif
