/*
 * fuzz_payload.c — libFuzzer target for ingress/payload.c, the parser of every webhook body
 * Intuit (or anyone who learned a verifier token) sends; both formats.
 *
 * Invariants checked beyond "does not crash":
 *   - the result is 0 or QBC_EMALFORMED, and error is "" exactly when it is 0;
 *   - a body the scanner refuses (jansson's rules) gives no events at all;
 *   - every event's strings are NUL-terminated within their fields; realm and id are
 *     non-empty, and no string bound for LMDB keys, URLs or logs holds a control byte;
 *     the entity is a non-empty [A-Za-z0-9] name and the operation a known one;
 *   - parsing is deterministic (a second parse gives the same bytes);
 *   - qbc_payload_clear() frees everything (LeakSanitizer) and leaves the result empty.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "ingress.h"
#include "json_scan.h"

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond))                                                                                                   \
            qbc_fatal("fuzz_payload: invariant broken: %s", #cond);                                                    \
    } while (0)

/* a field's string: terminated inside the field, and free of control bytes */
static size_t check_field(const char *s, size_t size)
{
    const char *nul = memchr(s, '\0', size);
    CHECK(nul != NULL);
    for (const char *c = s; c < nul; c++)
        CHECK((unsigned char)*c >= 0x20 && *c != 0x7f);
    return (size_t)(nul - s);
}

static void check_event(const qbc_event_t *ev, qbc_format_t format)
{
    size_t n;

    CHECK(check_field(ev->realm, sizeof(ev->realm)) > 0);
    CHECK(check_field(ev->id, sizeof(ev->id)) > 0);
    check_field(ev->deleted_id, sizeof(ev->deleted_id));
    n = check_field(ev->event_id, sizeof(ev->event_id));
    CHECK(format == QBC_FORMAT_CLOUDEVENTS || n == 0);
    n = check_field(ev->entity, sizeof(ev->entity));
    CHECK(n > 0);
    for (size_t i = 0; i < n; i++) {
        char c = ev->entity[i];
        CHECK((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'));
    }
    CHECK(ev->op != QBC_OP_UNKNOWN);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = malloc(size ? size : 1); /* exactly size bytes: ASan sees a read past the body */
    qbc_payload_t p, again;
    qbc_json_doc_t doc;
    qbc_json_error_t err;
    int rc, scanned;

    memcpy(body, data, size);
    rc = qbc_payload_parse(body, size, &p);
    CHECK(rc == 0 || rc == QBC_EMALFORMED);
    CHECK(memchr(p.error, '\0', sizeof(p.error)) != NULL);
    CHECK((rc == 0) == (p.error[0] == '\0'));
    CHECK((p.events == NULL) == (p.n_events == 0));
    CHECK(p.format == QBC_FORMAT_UNKNOWN || p.format == QBC_FORMAT_CLASSIC || p.format == QBC_FORMAT_CLOUDEVENTS);
    CHECK(p.n_events == 0 || p.format != QBC_FORMAT_UNKNOWN);

    qbc_json_init(&doc, NULL, 0);
    scanned = size > 0 && qbc_json_scan(&doc, body, size, 0, &err) == 0;
    qbc_json_dispose(&doc);
    if (!scanned)
        CHECK(rc == QBC_EMALFORMED && p.n_events == 0 && p.format == QBC_FORMAT_UNKNOWN);

    for (size_t i = 0; i < p.n_events; i++)
        check_event(&p.events[i], p.format);

    CHECK(qbc_payload_parse(body, size, &again) == rc);
    CHECK(again.format == p.format && again.n_events == p.n_events && again.n_rejected == p.n_rejected);
    CHECK(strcmp(again.error, p.error) == 0);
    for (size_t i = 0; i < p.n_events; i++) {
        const qbc_event_t *a = &p.events[i], *b = &again.events[i];
        CHECK(strcmp(a->realm, b->realm) == 0 && strcmp(a->entity, b->entity) == 0 && strcmp(a->id, b->id) == 0);
        CHECK(strcmp(a->deleted_id, b->deleted_id) == 0 && strcmp(a->event_id, b->event_id) == 0);
        CHECK(a->op == b->op && a->updated_ns == b->updated_ns);
    }
    qbc_payload_clear(&again);

    qbc_payload_clear(&p);
    CHECK(p.events == NULL && p.n_events == 0 && p.n_rejected == 0 && p.error[0] == '\0');
    free(body);
    return 0;
}
