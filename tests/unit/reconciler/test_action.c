/*
 * test_action.c — reconciler/action.c: the one table from an answer's class to what the
 * live fetch, a CDC sweep and a backfill do with it (qbo-facts §6 faults).
 */
#include <stdio.h>
#include <string.h>
#include "tap.h"
#include "rec_internal.h"

static qbc_fault_t fault(const char *type, const char *code, const char *message)
{
    qbc_fault_t f;
    memset(&f, 0, sizeof(f));
    f.present = 1;
    snprintf(f.type, sizeof(f.type), "%s", type);
    snprintf(f.code, sizeof(f.code), "%s", code);
    snprintf(f.message, sizeof(f.message), "%s", message);
    return f;
}

static const char *act_name(rec_action_t a)
{
    static const char *names[] = {"use",     "pause", "reauth",   "retry",  "read_alone",
                                  "deleted", "skip",  "catch_up", "give_up"};
    return (unsigned)a < sizeof(names) / sizeof(names[0]) ? names[a] : "?";
}

#define IS(cls, purpose, status, f, want, why)                                                                         \
    is_str(act_name(qbc_rec__action_for(cls, purpose, status, f)), act_name(want), why)

int main(void)
{
    qbc_fault_t none;
    memset(&none, 0, sizeof(none));
    qbc_fault_t invalid = fault("ValidationFault", "4000", "Error parsing query: Invoicer is not supported");
    qbc_fault_t auth = fault("AuthorizationFault", "403", "Unauthorized");
    qbc_fault_t old = fault("ValidationFault", "4000", "changedSince cannot be older than fixed days: 30");

    /* the same for everyone */
    rec_purpose_t all[] = {REC_FOR_QUERY, REC_FOR_READ, REC_FOR_CDC, REC_FOR_BACKFILL};
    for (size_t i = 0; i < 4; i++) {
        IS(REC_RES_OK, all[i], 200, &none, REC_ACT_USE, "2xx: use it");
        IS(REC_RES_THROTTLED, all[i], 429, &none, REC_ACT_PAUSE, "429: pause the realm");
        IS(REC_RES_AUTH, all[i], 401, &none, REC_ACT_REAUTH, "401: refresh the token");
        IS(REC_RES_RETRY, all[i], 503, &none, REC_ACT_RETRY, "5xx: back off and retry");
    }

    /* live fetches */
    IS(REC_RES_CLIENT, REC_FOR_QUERY, 400, &invalid, REC_ACT_READ_ALONE, "a refused query: read each alone");
    IS(REC_RES_GONE, REC_FOR_QUERY, 200, &none, REC_ACT_READ_ALONE, "610 in a query: read each alone");
    IS(REC_RES_GONE, REC_FOR_READ, 200, &none, REC_ACT_DELETED, "610 on a read: deleted");
    IS(REC_RES_CLIENT, REC_FOR_READ, 400, &invalid, REC_ACT_GIVE_UP, "a refused read: dead letter");

    /* CDC */
    IS(REC_RES_CLIENT, REC_FOR_CDC, 400, &old, REC_ACT_CATCH_UP, "older than CDC reaches: a backfill catches up");
    IS(REC_RES_GONE, REC_FOR_CDC, 400, &old, REC_ACT_CATCH_UP, "the same whatever its class");
    IS(REC_RES_CLIENT, REC_FOR_CDC, 400, &invalid, REC_ACT_SKIP_ENTITY, "an entity QBO refuses: skip it");
    IS(REC_RES_CLIENT, REC_FOR_CDC, 403, &auth, REC_ACT_GIVE_UP, "403 is the realm's access, not the entity");
    IS(REC_RES_GONE, REC_FOR_CDC, 200, &none, REC_ACT_GIVE_UP, "610 to a CDC request ends the sweep");

    /* backfills */
    IS(REC_RES_CLIENT, REC_FOR_BACKFILL, 400, &invalid, REC_ACT_SKIP_ENTITY, "an entity QBO refuses: skip it");
    IS(REC_RES_CLIENT, REC_FOR_BACKFILL, 400, &old, REC_ACT_GIVE_UP, "'older than' is no entity refusal");
    IS(REC_RES_CLIENT, REC_FOR_BACKFILL, 404, &none, REC_ACT_GIVE_UP, "404 fails the job");
    IS(REC_RES_GONE, REC_FOR_BACKFILL, 200, &none, REC_ACT_GIVE_UP, "610 fails the job");
    IS(REC_RES_CLIENT, REC_FOR_BACKFILL, 200, &invalid, REC_ACT_SKIP_ENTITY, "a ValidationFault in a 200 too");

    /* the entity-refusal rule on its own */
    ok(qbc_rec__entity_refused(400, &none), "a bare 400 refuses the entity");
    ok(!qbc_rec__entity_refused(401, &none) && !qbc_rec__entity_refused(429, &none) &&
           !qbc_rec__entity_refused(500, &none),
       "401, 429 and 5xx never do");
    ok(!qbc_rec__entity_refused(400, &auth), "nor an authorization fault");
    return done_testing();
}
