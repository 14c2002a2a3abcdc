/*
 * payload_parse.c — the cost of parsing one webhook body: ingress/payload.c (its own JSON
 * scanner) against the jansson-based parser it replaced (tests/unit/ingress/
 * payload_reference.c, built into this program only).
 *
 *   payload_parse [-n iterations] [-b classic|loadgen|cloudevents] [-p new|jansson]
 *
 * Prints, per body, ns/parse for each parser and their ratio. A benchmark: it prints
 * figures and does not pass or fail (it exits non-zero only if the two parsers disagree
 * on a body, since the figures would then mean nothing).
 *
 * Instructions per parse, which do not depend on the machine's load:
 *   valgrind --tool=callgrind --toggle-collect=qbc_payload_parse \
 *       build/bench/payload_parse -n 1000 -b loadgen -p new        (Ir / 1000)
 *   ... --toggle-collect=qbc_ref_payload_parse ... -p jansson
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "ingress.h"
#include "payload_reference.h"

/* Intuit's sample (qbo-facts §1.1, tests/unit/ingress/fixtures/classic-intuit-docs.json) */
static const char classic_body[] =
    "{\"eventNotifications\":[{\"realmId\":\"1185883450\",\"dataChangeEvent\":{\"entities\":[{\"name\":\"Customer\","
    "\"id\":\"1\",\"operation\":\"Create\",\"lastUpdated\":\"2015-10-05T14:42:19-0700\"},{\"name\":\"Vendor\",\"id\":"
    "\"1\",\"operation\":\"Create\",\"lastUpdated\":\"2015-10-05T14:42:19-0700\"}]}}]}";

/* what bench/loadgen sends: one entity, a 16-digit realm */
static const char loadgen_body[] =
    "{\"eventNotifications\":[{\"realmId\":\"9130350543127456\",\"dataChangeEvent\":{\"entities\":[{\"name\":"
    "\"Invoice\",\"id\":\"100000123\",\"operation\":\"Update\",\"lastUpdated\":\"2026-11-21T10:00:00.000Z\"}]}}]}";

/* ten CloudEvents in one body (qbo-facts §1.2), built by make_cloudevents() */
static char cloudevents_body[8192];

static size_t make_cloudevents(void)
{
    static const char *const types[] = {"qbo.invoice.created.v1", "qbo.customer.merged.v1", "qbo.bill.updated.v1",
                                        "qbo.payment.deleted.v1", "qbo.estimate.emailed.v1"};
    size_t len = 0;

    len += (size_t)snprintf(cloudevents_body + len, sizeof(cloudevents_body) - len, "[");
    for (int i = 0; i < 10; i++) {
        len +=
            (size_t)snprintf(cloudevents_body + len, sizeof(cloudevents_body) - len,
                             "%s{\"specversion\":\"1.0\",\"id\":\"88cd52aa-33b6-4351-9aa4-47572edbd0%02d\","
                             "\"source\":\"intuit.dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU=\",\"type\":\"%s\","
                             "\"datacontenttype\":\"application/json\",\"time\":\"2025-09-10T21:31:25.1798515%02dZ\","
                             "\"intuitentityid\":\"%d\",\"intuitaccountid\":\"9130350543127456\",\"data\":%s}",
                             i ? "," : "", i, types[i % 5], i, 1234 + i, i % 5 == 1 ? "{\"deletedid\":\"27\"}" : "{}");
    }
    len += (size_t)snprintf(cloudevents_body + len, sizeof(cloudevents_body) - len, "]");
    return len;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef int (*parse_fn)(const char *, size_t, qbc_payload_t *);

/* ns per parse (and clear) over n rounds */
static double run(parse_fn parse, const char *body, size_t len, long n)
{
    qbc_payload_t p;
    int64_t start = now_ns();
    for (long i = 0; i < n; i++) {
        parse(body, len, &p);
        qbc_payload_clear(&p);
    }
    return (double)(now_ns() - start) / (double)n;
}

/* both parsers must read the body the same way for the figures to compare like with like */
static int agree(const char *body, size_t len)
{
    qbc_payload_t a, b;
    int rc_a = qbc_payload_parse(body, len, &a), rc_b = qbc_ref_payload_parse(body, len, &b), same;

    same = rc_a == 0 && rc_b == 0 && a.n_events == b.n_events && a.n_rejected == b.n_rejected &&
           (a.n_events == 0 || memcmp(a.events, b.events, a.n_events * sizeof(*a.events)) == 0);
    qbc_payload_clear(&a);
    qbc_payload_clear(&b);
    return same;
}

int main(int argc, char **argv)
{
    const struct {
        const char *name, *label, *body;
        size_t len;
    } bodies[] = {
        {"classic", "classic (Intuit sample, 2 entities)", classic_body, sizeof(classic_body) - 1},
        {"loadgen", "classic (loadgen, 1 entity)", loadgen_body, sizeof(loadgen_body) - 1},
        {"cloudevents", "CloudEvents (10 events)", cloudevents_body, 0},
    };
    const char *only_body = NULL, *only_parser = NULL;
    long n = 200000;
    int opt;

    while ((opt = getopt(argc, argv, "n:b:p:")) != -1) {
        switch (opt) {
        case 'n':
            n = atol(optarg);
            break;
        case 'b':
            only_body = optarg;
            break;
        case 'p':
            only_parser = optarg;
            break;
        default:
            fprintf(stderr, "usage: %s [-n iterations] [-b classic|loadgen|cloudevents] [-p new|jansson]\n", argv[0]);
            return 2;
        }
    }
    if (n <= 0)
        n = 1;
    size_t ce_len = make_cloudevents();

    printf("%-38s %6s %14s %14s %7s\n", "body", "bytes", "new ns/parse", "jansson ns", "ratio");
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        const char *body = bodies[i].body;
        size_t len = bodies[i].len != 0 ? bodies[i].len : ce_len;
        double t_new = 0, t_ref = 0;

        if (only_body != NULL && strcmp(only_body, bodies[i].name) != 0)
            continue;
        if (!agree(body, len)) {
            fprintf(stderr, "payload_parse: the parsers disagree on the %s body\n", bodies[i].name);
            return 1;
        }
        /* a short warm-up for caches and the allocator, then the measured rounds */
        if (only_parser == NULL || strcmp(only_parser, "new") == 0) {
            run(qbc_payload_parse, body, len, n / 10 + 1);
            t_new = run(qbc_payload_parse, body, len, n);
        }
        if (only_parser == NULL || strcmp(only_parser, "jansson") == 0) {
            run(qbc_ref_payload_parse, body, len, n / 10 + 1);
            t_ref = run(qbc_ref_payload_parse, body, len, n);
        }
        printf("%-38s %6zu %14.1f %14.1f %6.1fx\n", bodies[i].label, len, t_new, t_ref,
               t_new > 0 && t_ref > 0 ? t_ref / t_new : 0.0);
    }
    return 0;
}
