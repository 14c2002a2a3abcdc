/*
 * json_scan.c — a strict single-pass JSON scanner that records a token tape (json_scan.h).
 *
 * It replaces jansson's json_loadb() on the webhook path: building a DOM with a hash
 * table per object was the largest per-webhook cost of the service, while payload.c
 * reads a dozen fields. The default acceptance rules are jansson 2.14's (json_scan.h
 * lists them), because a body that jansson accepted and this scanner refuses, or the
 * other way round, would change which webhooks the service keeps; tests/unit/ingress/
 * test_payload_diff.c compares the two on mutated bodies.
 *
 * It also reads QBO's API answers (QBC_JSON_RFC8259), where a DOM was worse than slow:
 * jansson turns every real into a double, and dumping the entity again wrote 2932.92 as
 * 2932.9200000000001. Here a value's bytes are only ever copied.
 *
 * Assumptions, and why:
 *   - The scanner is an explicit state machine: the open containers form a linked list
 *     through the tape, so neither recursion nor a separate stack grows with the input.
 *   - Strings are validated but not decoded: almost every webhook string is plain ASCII
 *     without escapes and is read in place.
 *   - Tokens are allocated geometrically; a webhook fits the caller's stack buffer.
 */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include "common.h"
#include "json_scan.h"

/* ============================ byte classes =========================== */

/* what a byte means inside a string */
enum {
    S_PLAIN = 0, /* copied as is: printable ASCII other than '"' and '\\' */
    S_QUOTE,
    S_ESCAPE,
    S_CONTROL, /* below 0x20: jansson refuses them raw */
    S_UTF8_2,  /* C2..DF: one continuation byte follows */
    S_UTF8_3,  /* E0..EF: two */
    S_UTF8_4,  /* F0..F4: three */
    S_INVALID, /* a continuation byte without a lead, C0, C1 (always overlong) and F5..FF */
};

static const unsigned char string_class[256] = {
    [0x00 ... 0x1f] = S_CONTROL, ['"'] = S_QUOTE,
    ['\\'] = S_ESCAPE,           [0x80 ... 0xc1] = S_INVALID,
    [0xc2 ... 0xdf] = S_UTF8_2,  [0xe0 ... 0xef] = S_UTF8_3,
    [0xf0 ... 0xf4] = S_UTF8_4,  [0xf5 ... 0xff] = S_INVALID,
};

static int is_ws(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* the code unit of the four hex digits at p, or -1 */
static int32_t hex4(const unsigned char *p)
{
    int32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_value(p[i]);
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

static inline const unsigned char *skip_ws(const unsigned char *p, const unsigned char *end)
{
    /* webhooks are mostly compact: one comparison settles the common case */
    while (p < end && *p <= ' ' && is_ws(*p))
        p++;
    return p;
}

/*
 * jansson's quirk, kept so that both accept the same bodies: its lexer reads one byte
 * past a number or a literal (true, false, null) and pushes it back, and a pushed-back
 * NUL byte reads as "nothing buffered", so that one NUL right after such a token is
 * skipped ("[1\0]" is valid). A second NUL, or one anywhere else, is not.
 */
static inline const unsigned char *skip_nul(const unsigned char *p, const unsigned char *end)
{
    return p < end && *p == '\0' ? p + 1 : p;
}

/* =============================== tokens ============================== */

struct st_scan_t {
    qbc_json_doc_t *doc;
    const unsigned char *text;
    qbc_json_error_t *err;
    int rc;    /* QBC_EMALFORMED or -ENOMEM once failed */
    int flags; /* QBC_JSON_RFC8259 */
};

/* Records the first failure; returns NULL so that callers can `return fail(...)`. */
static const unsigned char *fail(struct st_scan_t *sc, const unsigned char *at, const char *what)
{
    sc->err->what = what;
    sc->err->pos = (size_t)(at - sc->text);
    sc->rc = QBC_EMALFORMED;
    return NULL;
}

/* Makes room for more tokens; -ENOMEM when the tape cannot grow (the body size is client-driven). */
static __attribute__((noinline)) int grow(qbc_json_doc_t *doc)
{
    size_t cap = doc->_cap < 64 ? 64 : doc->_cap * 2;
    qbc_json_tok_t *tok;

    if (cap > SIZE_MAX / sizeof(*tok))
        return -ENOMEM;
    if (doc->tok == doc->_inline) {
        if ((tok = malloc(cap * sizeof(*tok))) == NULL)
            return -ENOMEM;
        if (doc->n_tok != 0)
            memcpy(tok, doc->tok, doc->n_tok * sizeof(*tok));
    } else if ((tok = realloc(doc->tok, cap * sizeof(*tok))) == NULL) {
        return -ENOMEM;
    }
    doc->tok = tok;
    doc->_cap = cap;
    return 0;
}

/* Appends a token starting at `at`; NULL when the tape cannot grow. */
static inline qbc_json_tok_t *new_tok(struct st_scan_t *sc, const unsigned char *at)
{
    qbc_json_doc_t *doc = sc->doc;
    qbc_json_tok_t *t;

    if (doc->n_tok == doc->_cap && grow(doc) != 0) {
        fail(sc, at, "out of memory");
        sc->rc = -ENOMEM;
        return NULL;
    }
    t = &doc->tok[doc->n_tok++];
    t->start = (size_t)(at - sc->text);
    t->flags = 0;
    return t;
}

/* =============================== strings ============================= */

/*
 * checks one \uXXXX escape (p at the 'u') the way jansson decodes it: surrogates only as
 * a high-low pair, and no U+0000. Returns the byte after it (after both halves of a pair).
 */
static const unsigned char *scan_unicode(struct st_scan_t *sc, const unsigned char *p, const unsigned char *end)
{
    int32_t v, lo;

    if (end - p < 5 || (v = hex4(p + 1)) < 0)
        return fail(sc, p, "invalid \\u escape");
    p += 5;
    if (v == 0)
        return fail(sc, p, "\\u0000 is not allowed");
    if (v >= 0xdc00 && v <= 0xdfff)
        return fail(sc, p, "lone low surrogate escape");
    if (v >= 0xd800 && v <= 0xdbff) {
        if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || (lo = hex4(p + 2)) < 0 || lo < 0xdc00 || lo > 0xdfff)
            return fail(sc, p, "high surrogate escape without its low half");
        p += 6;
    }
    return p;
}

/*
 * the rest of a string that holds escapes or non-ASCII bytes, or that is broken: begin
 * is the byte after its opening quote, p the first byte not yet checked.
 * @return the byte after the closing quote, or NULL
 */
static __attribute__((noinline)) const unsigned char *scan_string_slow(struct st_scan_t *sc, const unsigned char *begin,
                                                                       const unsigned char *p, const unsigned char *end,
                                                                       qbc_json_tok_t *t)
{
    for (;;) {
        while (p < end && string_class[*p] == S_PLAIN)
            p++;
        if (p == end)
            return fail(sc, p, "unterminated string");
        switch (string_class[*p]) {
        case S_QUOTE:
            t->len = (size_t)(p - begin);
            return p + 1;
        case S_ESCAPE:
            t->flags |= QBC_JSON_ESCAPED;
            if (end - p < 2)
                return fail(sc, p, "unterminated string");
            switch (p[1]) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                p += 2;
                break;
            case 'u':
                if ((p = scan_unicode(sc, p + 1, end)) == NULL)
                    return NULL;
                break;
            default:
                return fail(sc, p, "invalid escape");
            }
            break;
        case S_CONTROL:
            return fail(sc, p, "control character in a string");
        case S_UTF8_2:
            if (end - p < 2 || (p[1] & 0xc0) != 0x80)
                return fail(sc, p, "invalid UTF-8");
            p += 2;
            break;
        case S_UTF8_3:
            /* E0 needs A0.. (shorter is overlong); ED needs ..9F (higher is a surrogate) */
            if (end - p < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[0] == 0xe0 && p[1] < 0xa0) ||
                (p[0] == 0xed && p[1] > 0x9f))
                return fail(sc, p, "invalid UTF-8");
            p += 3;
            break;
        case S_UTF8_4:
            /* F0 needs 90.. (shorter is overlong); F4 needs ..8F (higher is past U+10FFFF) */
            if (end - p < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80 ||
                (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] > 0x8f))
                return fail(sc, p, "invalid UTF-8");
            p += 4;
            break;
        default:
            return fail(sc, p, "invalid UTF-8");
        }
    }
}

/*
 * first_special(p) is the index of the first byte among BLOCK bytes at p that ends a
 * plain run: one below 0x20 or from 0x80 on, '"' or '\\'; BLOCK when there is none.
 * SSE2 (every x86-64) looks at 16 bytes with three comparisons; elsewhere 8 bytes are
 * tested as one 64-bit word.
 */
#ifdef __SSE2__
#define BLOCK 16

static inline unsigned first_special(const unsigned char *p)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    /* a signed comparison: bytes from 0x80 on are negative, so "< 0x20" catches them too */
    __m128i m =
        _mm_or_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),
                     _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))));
    unsigned mask = (unsigned)_mm_movemask_epi8(m);
    return mask == 0 ? BLOCK : (unsigned)__builtin_ctz(mask);
}
#else
#define BLOCK 8

static inline unsigned first_special(const unsigned char *p)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t v, q, b, m;

    memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v); /* the first byte in the lowest bits */
#endif
    /* the zero-byte tests flag false positives only above a true one (a borrow moves
     * upwards), so the lowest flag is exact */
    q = v ^ (ones * '"');
    b = v ^ (ones * '\\');
    m = ((v - ones * 0x20) | v) /* below 0x20 or from 0x80 */
        | ((q - ones) & ~q)     /* '"' */
        | ((b - ones) & ~b);    /* '\\' */
    m &= highs;
    return m == 0 ? BLOCK : (unsigned)__builtin_ctzll(m) >> 3;
}
#endif

/*
 * checks a string from p (the byte after its opening quote) to its closing quote; the
 * plain-ASCII case stays here, a block at a time, anything else goes to the slow path.
 * @return the byte after the closing quote, or NULL
 */
static inline const unsigned char *scan_string(struct st_scan_t *sc, const unsigned char *p, const unsigned char *end,
                                               qbc_json_tok_t *t)
{
    const unsigned char *begin = p;

    while (end - p >= BLOCK) {
        unsigned i = first_special(p);
        if (i == BLOCK) {
            p += BLOCK;
            continue;
        }
        p += i;
        if (*p != '"')
            return scan_string_slow(sc, begin, p, end, t);
        t->len = (size_t)(p - begin);
        return p + 1;
    }
    while (p < end && string_class[*p] == S_PLAIN)
        p++;
    if (p < end && *p == '"') {
        t->len = (size_t)(p - begin);
        return p + 1;
    }
    return scan_string_slow(sc, begin, p, end, t);
}

size_t qbc_json_unescape(const char *raw, size_t len, char *dst)
{
    const char *p = raw, *end = raw + len;
    char *d = dst;

    while (p < end) {
        const char *bs = memchr(p, '\\', (size_t)(end - p));
        size_t run = (bs != NULL ? bs : end) - p;
        memcpy(d, p, run);
        d += run;
        p += run;
        if (p == end)
            break;
        /* the scanner has checked every escape: p[1] exists and is valid */
        switch (p[1]) {
        case 'b':
            *d++ = '\b';
            break;
        case 'f':
            *d++ = '\f';
            break;
        case 'n':
            *d++ = '\n';
            break;
        case 'r':
            *d++ = '\r';
            break;
        case 't':
            *d++ = '\t';
            break;
        case 'u': {
            uint32_t cp = (uint32_t)hex4((const unsigned char *)p + 2);
            p += 6;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + ((uint32_t)hex4((const unsigned char *)p + 2) - 0xdc00);
                p += 6;
            }
            if (cp < 0x80) {
                *d++ = (char)cp;
            } else if (cp < 0x800) {
                *d++ = (char)(0xc0 | cp >> 6);
                *d++ = (char)(0x80 | (cp & 0x3f));
            } else if (cp < 0x10000) {
                *d++ = (char)(0xe0 | cp >> 12);
                *d++ = (char)(0x80 | (cp >> 6 & 0x3f));
                *d++ = (char)(0x80 | (cp & 0x3f));
            } else {
                *d++ = (char)(0xf0 | cp >> 18);
                *d++ = (char)(0x80 | (cp >> 12 & 0x3f));
                *d++ = (char)(0x80 | (cp >> 6 & 0x3f));
                *d++ = (char)(0x80 | (cp & 0x3f));
            }
            continue;
        }
        default: /* '"', '\\', '/' stand for themselves */
            *d++ = p[1];
            break;
        }
        p += 2;
    }
    return (size_t)(d - dst);
}

/* =============================== numbers ============================= */

/*
 * whether a real number overflows a double, as strtod() says for jansson. Decided from
 * the decimal magnitude alone unless the value lies within a factor 10 of DBL_MAX; only
 * then does strtod() run, on a copy with the locale's decimal point, as in jansson.
 */
static int real_overflows(const unsigned char *num, size_t len, int *no_memory)
{
    const unsigned char *p = num, *end = num + len;
    int64_t magnitude = 0, exp = 0; /* the value lies in [10^(magnitude-1), 10^magnitude) */
    int seen = 0, exp_neg = 0;

    if (*p == '-')
        p++;
    for (; p < end && is_digit(*p); p++) {
        if (seen || *p != '0') {
            seen = 1;
            magnitude++;
        }
    }
    if (p < end && *p == '.') {
        for (p++; p < end && is_digit(*p); p++) {
            if (seen)
                continue;
            if (*p != '0')
                seen = 1;
            else
                magnitude--;
        }
    }
    if (!seen)
        return 0;  /* zero, whatever its exponent */
    if (p < end) { /* 'e' or 'E' */
        p++;
        if (*p == '+' || *p == '-')
            exp_neg = *p++ == '-';
        for (; p < end; p++)
            if (exp < INT64_C(100000000000000000)) /* past any text's magnitude; and no overflow */
                exp = exp * 10 + (*p - '0');
    }
    magnitude += exp_neg ? -exp : exp;
    if (magnitude <= 308)
        return 0; /* below 1e308 < DBL_MAX */
    if (magnitude >= 310)
        return 1; /* at least 1e309 */

    char small[64], *copy = len < sizeof(small) ? small : malloc(len + 1), *dot, *stop;
    const char *point = localeconv()->decimal_point;
    double v;
    int over;
    if (copy == NULL) {
        *no_memory = 1;
        return 1;
    }
    memcpy(copy, num, len);
    copy[len] = '\0';
    if (point[0] != '.' && (dot = strchr(copy, '.')) != NULL)
        *dot = point[0];
    errno = 0;
    v = strtod(copy, &stop);
    over = (v == HUGE_VAL || v == -HUGE_VAL) && errno == ERANGE;
    if (copy != small)
        free(copy);
    return over;
}

/*
 * checks a number at p (a '-' or a digit) and types it integer or real.
 * @return the byte after it, or NULL
 */
static const unsigned char *scan_number(struct st_scan_t *sc, const unsigned char *p, const unsigned char *end,
                                        qbc_json_tok_t *t)
{
    const unsigned char *begin = p, *digits;
    int real = 0;

    if (*p == '-') {
        t->flags |= QBC_JSON_NEGATIVE;
        p++;
    }
    digits = p;
    if (p == end || !is_digit(*p))
        return fail(sc, p, "invalid number");
    if (*p == '0') {
        if (++p < end && is_digit(*p))
            return fail(sc, p, "leading zero");
    } else {
        while (p < end && is_digit(*p))
            p++;
    }
    if (p < end && *p == '.') {
        real = 1;
        if (++p == end || !is_digit(*p))
            return fail(sc, p, "invalid number");
        while (p < end && is_digit(*p))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        real = 1;
        if (++p < end && (*p == '+' || *p == '-'))
            p++;
        if (p == end || !is_digit(*p))
            return fail(sc, p, "invalid number");
        while (p < end && is_digit(*p))
            p++;
    }
    t->len = (size_t)(p - begin);
    t->end = (size_t)(p - sc->text);
    if (sc->flags & QBC_JSON_RFC8259) {
        /* any magnitude: the number is passed on as text, never converted */
        t->type = real ? QBC_JSON_REAL : QBC_JSON_INTEGER;
        return p;
    }
    if (real) {
        int no_memory = 0;
        t->type = QBC_JSON_REAL;
        if (real_overflows(begin, t->len, &no_memory)) {
            fail(sc, begin, no_memory ? "out of memory" : "real number overflow");
            if (no_memory)
                sc->rc = -ENOMEM;
            return NULL;
        }
    } else {
        /* jansson reads integers with strtoll: anything outside int64_t is an error */
        static const char max[] = "9223372036854775807", min[] = "9223372036854775808";
        size_t n = (size_t)(p - digits);
        t->type = QBC_JSON_INTEGER;
        if (n > sizeof(max) - 1 || (n == sizeof(max) - 1 && memcmp(digits, *begin == '-' ? min : max, n) > 0))
            return fail(sc, begin, "integer out of range");
    }
    return p;
}

/* ================================ scan =============================== */

#define NO_PARENT SIZE_MAX

void qbc_json_init(qbc_json_doc_t *doc, qbc_json_tok_t *buf, size_t n)
{
    doc->tok = doc->_inline = buf;
    doc->n_tok = 0;
    doc->_cap = doc->_inline_cap = buf != NULL ? n : 0;
}

void qbc_json_dispose(qbc_json_doc_t *doc)
{
    if (doc->tok != doc->_inline)
        free(doc->tok);
    doc->tok = doc->_inline;
    doc->_cap = doc->_inline_cap;
    doc->n_tok = 0;
}

/*
 * reads an object key (p at its opening quote, or at whatever stands there instead) and
 * the colon after it. @return the first byte of the member's value, or NULL
 */
static inline __attribute__((always_inline)) const unsigned char *scan_key(struct st_scan_t *sc, const unsigned char *p,
                                                                           const unsigned char *end)
{
    qbc_json_tok_t *t;

    if (p == end || *p != '"')
        return fail(sc, p, "object key expected");
    if ((t = new_tok(sc, p + 1)) == NULL)
        return NULL;
    t->type = QBC_JSON_STRING;
    t->next = sc->doc->n_tok;
    if ((p = scan_string(sc, p + 1, end, t)) == NULL)
        return NULL;
    t->end = (size_t)(p - sc->text);
    p = skip_ws(p, end);
    if (p == end || *p != ':')
        return fail(sc, p, "':' expected");
    return skip_ws(p + 1, end);
}

int qbc_json_scan(qbc_json_doc_t *doc, const char *text, size_t len, int flags, qbc_json_error_t *err)
{
    struct st_scan_t sc = {doc, (const unsigned char *)text, err, 0, flags};
    const int nul_quirk = !(flags & QBC_JSON_RFC8259);
    const unsigned char *p = sc.text, *end = sc.text + len;
    size_t cur = NO_PARENT, depth = 0; /* the innermost open container, and how many are open */
    qbc_json_tok_t *t, *c;

    doc->n_tok = 0;
    err->what = NULL;
    err->pos = 0;
    p = skip_ws(p, end);
    if (p == end || (*p != '{' && *p != '[')) {
        /* jansson without JSON_DECODE_ANY: the root is a container */
        fail(&sc, p, "'{' or '[' expected");
        goto Exit;
    }

    for (;;) {
        /* p is at the first byte of a value, or of whatever stands where one should */
        if (depth >= QBC_JSON_MAX_DEPTH) {
            fail(&sc, p, "nested too deeply");
            goto Exit;
        }
        if (p == end) {
            fail(&sc, p, "value expected");
            goto Exit;
        }
        if ((t = new_tok(&sc, p)) == NULL)
            goto Exit;
        switch (*p) {
        case '{':
        case '[':
            t->type = *p == '{' ? QBC_JSON_OBJECT : QBC_JSON_ARRAY;
            t->len = 0;
            t->next = cur; /* links to the parent while the container is open */
            cur = doc->n_tok - 1;
            depth++;
            p = skip_ws(p + 1, end);
            if (p < end && *p == (t->type == QBC_JSON_OBJECT ? '}' : ']')) {
                /* empty: it ends right here */
                p++;
                t->end = (size_t)(p - sc.text);
                cur = t->next;
                t->next = doc->n_tok;
                depth--;
                break;
            }
            /* t may move once scan_key adds a token: not used below */
            if (t->type == QBC_JSON_OBJECT && (p = scan_key(&sc, p, end)) == NULL)
                goto Exit;
            continue;
        case '"':
            t->type = QBC_JSON_STRING;
            t->start++;
            t->next = doc->n_tok;
            if ((p = scan_string(&sc, p + 1, end, t)) == NULL)
                goto Exit;
            t->end = (size_t)(p - sc.text);
            break;
        case 't':
        case 'f':
        case 'n': {
            static const struct {
                char text[6];
                unsigned char len, type;
            } lit[] = {{"true", 4, QBC_JSON_TRUE}, {"false", 5, QBC_JSON_FALSE}, {"null", 4, QBC_JSON_NULL}};
            int i = *p == 't' ? 0 : *p == 'f' ? 1 : 2;
            if ((size_t)(end - p) < lit[i].len || memcmp(p, lit[i].text, lit[i].len) != 0) {
                fail(&sc, p, "invalid literal");
                goto Exit;
            }
            t->type = lit[i].type;
            t->len = lit[i].len;
            t->next = doc->n_tok;
            p += lit[i].len;
            t->end = (size_t)(p - sc.text);
            if (nul_quirk)
                p = skip_nul(p, end);
            break;
        }
        default:
            if (*p != '-' && !is_digit(*p)) {
                fail(&sc, p, "value expected");
                goto Exit;
            }
            t->next = doc->n_tok;
            if ((p = scan_number(&sc, p, end, t)) == NULL)
                goto Exit;
            if (nul_quirk)
                p = skip_nul(p, end);
            break;
        }

        /*
         * a value has ended: count it in its container; then a comma leads to the next
         * value, or the container ends too, and is itself a value that has ended
         */
        for (;;) {
            if (cur == NO_PARENT) {
                /* the root is complete: only whitespace may follow */
                if ((p = skip_ws(p, end)) != end) {
                    fail(&sc, p, "end of text expected");
                    goto Exit;
                }
                return 0;
            }
            c = &doc->tok[cur];
            c->len++;
            p = skip_ws(p, end);
            if (p < end && *p == ',') {
                p = skip_ws(p + 1, end);
                if (c->type == QBC_JSON_OBJECT && (p = scan_key(&sc, p, end)) == NULL)
                    goto Exit;
                break;
            }
            if (p == end || *p != (c->type == QBC_JSON_OBJECT ? '}' : ']')) {
                fail(&sc, p, "',' or the end of the container expected");
                goto Exit;
            }
            p++;
            c->end = (size_t)(p - sc.text);
            cur = c->next;
            c->next = doc->n_tok;
            depth--;
        }
    }

Exit:
    return sc.rc;
}

/* =============================== reading ============================= */

/* longest escaped key worth decoding: each byte of an ASCII key takes at most 6 ("\u0041") */
#define KEY_RAW_MAX (6 * 32)

int qbc_json_str_eq(const qbc_json_doc_t *doc, const char *text, size_t i, const char *s, size_t len)
{
    const qbc_json_tok_t *t;
    char buf[KEY_RAW_MAX];

    if (i == QBC_JSON_NONE || i >= doc->n_tok || (t = &doc->tok[i])->type != QBC_JSON_STRING)
        return 0;
    if (!(t->flags & QBC_JSON_ESCAPED))
        return t->len == len && memcmp(text + t->start, s, len) == 0;
    /* decoding never lengthens, and never shortens below a sixth */
    if (t->len < len || t->len > KEY_RAW_MAX)
        return 0;
    return qbc_json_unescape(text + t->start, t->len, buf) == len && memcmp(buf, s, len) == 0;
}

size_t qbc_json_get(const qbc_json_doc_t *doc, const char *text, size_t obj, const char *key, size_t len)
{
    size_t k, end, found = QBC_JSON_NONE;

    if (obj == QBC_JSON_NONE || obj >= doc->n_tok || doc->tok[obj].type != QBC_JSON_OBJECT)
        return QBC_JSON_NONE;
    /* an object's tokens are key, value, key, value...; a value's next is the following key */
    for (k = obj + 1, end = doc->tok[obj].next; k < end; k = doc->tok[k + 1].next)
        if (qbc_json_str_eq(doc, text, k, key, len))
            found = k + 1;
    return found;
}

int qbc_json_str_copy(const qbc_json_doc_t *doc, const char *text, size_t i, char *dst, size_t size)
{
    const qbc_json_tok_t *t;
    size_t n;

    dst[0] = '\0';
    if (i == QBC_JSON_NONE || i >= doc->n_tok)
        return QBC_EINVAL;
    t = &doc->tok[i];
    if (t->type == QBC_JSON_INTEGER) {
        n = t->len < size ? t->len : size - 1;
        memcpy(dst, text + t->start, n);
    } else if (t->type == QBC_JSON_STRING && !(t->flags & QBC_JSON_ESCAPED)) {
        n = t->len < size ? t->len : size - 1;
        memcpy(dst, text + t->start, n);
    } else if (t->type == QBC_JSON_STRING) {
        char *tmp = qbc_alloc(t->len ? t->len : 1);
        n = qbc_json_unescape(text + t->start, t->len, tmp);
        if (n >= size)
            n = size - 1; /* may cut a UTF-8 sequence: callers keep ids and messages, not text to pass on */
        memcpy(dst, tmp, n);
        free(tmp);
    } else {
        return QBC_EINVAL;
    }
    dst[n] = '\0';
    return 0;
}

char *qbc_json_copy_compact(const qbc_json_doc_t *doc, const char *text, size_t i, size_t *out_len)
{
    const qbc_json_tok_t *t = &doc->tok[i];
    size_t from = t->type == QBC_JSON_STRING ? t->start - 1 : t->start, pos = from, end = t->end, n = 0;
    char *out = qbc_alloc(end - from + 1);

    /*
     * Between the tokens of the value there is only punctuation and whitespace: copy the
     * punctuation, drop the whitespace, and copy every token's own bytes as they are.
     */
    for (size_t j = i, last = t->next; j < last; j++) {
        const qbc_json_tok_t *u = &doc->tok[j];
        size_t at = u->type == QBC_JSON_STRING ? u->start - 1 : u->start;
        for (; pos < at; pos++)
            if (!is_ws((unsigned char)text[pos]) && text[pos] != '\0')
                out[n++] = text[pos];
        if (u->type == QBC_JSON_OBJECT || u->type == QBC_JSON_ARRAY) {
            out[n++] = text[pos++]; /* the opening bracket; the rest is tokens and punctuation */
            continue;
        }
        memcpy(out + n, text + at, u->end - at);
        n += u->end - at;
        pos = u->end;
    }
    for (; pos < end; pos++) /* the closing brackets of the last containers */
        if (!is_ws((unsigned char)text[pos]) && text[pos] != '\0')
            out[n++] = text[pos];
    out[n] = '\0';
    *out_len = n;
    return out;
}
