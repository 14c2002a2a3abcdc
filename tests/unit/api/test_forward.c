/*
 * test_forward.c — api/forward.c's decision for a realm's admin request in cluster mode:
 * answered here, forwarded to the owner, or 503 (a loop between two nodes that disagree about
 * the owner ends at the second node; no owner known); and GET /admin/realms's merge of this
 * node's rows with the rows each owner answered for its own realms.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "api_internal.h"
#include "../../tap.h"

static json_t *J(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    if (j == NULL)
        abort();
    return j;
}

/* the merged row of realm, as compact JSON (static buffer), or "" */
static const char *row(json_t *merged, const char *realm)
{
    static char buf[512];
    size_t i;
    json_t *r;
    buf[0] = '\0';
    json_array_foreach(json_object_get(merged, "realms"), i, r)
    {
        if (strcmp(json_string_value(json_object_get(r, "realm")), realm) == 0) {
            char *t = json_dumps(r, JSON_COMPACT | JSON_SORT_KEYS);
            snprintf(buf, sizeof(buf), "%s", t);
            free(t);
        }
    }
    return buf;
}

static void test_merge(void)
{
    /* this node is n1; n2 answered, n3 did not; r4's owner is unknown; r5 is n2's but n2 lacks it */
    json_t *rows = J("[{\"realm\":\"r1\",\"calls\":1,\"figures_from\":\"n1\"},"
                     "{\"realm\":\"r2\",\"calls\":0,\"figures_from\":\"n1\"},"
                     "{\"realm\":\"r3\",\"calls\":0,\"figures_from\":\"n1\"},"
                     "{\"realm\":\"r4\",\"calls\":0,\"figures_from\":\"n1\"},"
                     "{\"realm\":\"r5\",\"calls\":0,\"figures_from\":\"n1\"}]");
    json_t *owners = J("{\"r1\":\"n1\",\"r2\":\"n2\",\"r3\":\"n3\",\"r5\":\"n2\"}");
    json_t *answers = J("{\"n2\":[{\"realm\":\"r1\",\"calls\":9,\"figures_from\":\"n2\"},"
                        "{\"realm\":\"r2\",\"calls\":7,\"figures_from\":\"n2\",\"owned_here\":true}],\"n3\":null}");
    char *before = json_dumps(rows, JSON_COMPACT);
    json_t *m = qbc_api__realms_merge(rows, owners, answers, "n1");
    is_int((int)json_array_size(json_object_get(m, "realms")), 5, "every local realm, once");
    is_str(json_string_value(json_object_get(json_array_get(json_object_get(m, "realms"), 2), "realm")), "r3",
           "in this node's order");
    is_str(row(m, "r1"), "{\"calls\":1,\"figures_from\":\"n1\",\"owner\":\"n1\",\"realm\":\"r1\"}",
           "own realm: this node's row, even when another node answers a row for it");
    is_str(row(m, "r2"), "{\"calls\":7,\"figures_from\":\"n2\",\"owned_here\":false,\"owner\":\"n2\",\"realm\":\"r2\"}",
           "another node's realm: its owner's row (owned_here: the node answering)");
    is_str(row(m, "r3"), "{\"calls\":0,\"figures_from\":\"n1\",\"owner\":\"n3\",\"realm\":\"r3\"}",
           "owner did not answer: this node's row, figures_from says so");
    is_str(row(m, "r4"), "{\"calls\":0,\"figures_from\":\"n1\",\"owner\":null,\"realm\":\"r4\"}",
           "no owner known: this node's row");
    is_str(row(m, "r5"), "{\"calls\":0,\"figures_from\":\"n1\",\"owner\":\"n2\",\"realm\":\"r5\"}",
           "owner answered without the realm: this node's row");
    char *un = json_dumps(json_object_get(m, "nodes_unanswered"), JSON_COMPACT);
    is_str(un, "[\"n3\"]", "the node that did not answer is listed, once");
    free(un);
    char *after = json_dumps(rows, JSON_COMPACT);
    is_str(after, before, "the local rows are not changed");
    free(before);
    free(after);
    json_decref(m);

    json_t *none = json_array();
    m = qbc_api__realms_merge(none, owners, answers, "n1");
    is_int((int)json_array_size(json_object_get(m, "realms")), 0, "no realms: an empty list");
    is_int((int)json_array_size(json_object_get(m, "nodes_unanswered")), 0, "and no node listed");
    json_decref(m);
    json_decref(none);
    json_decref(rows);
    json_decref(owners);
    json_decref(answers);
}

static void test_nodes_merge(void)
{
    json_t *rows = json_pack("[{s:s}]", "id", "1"),
           *answers = json_pack("{s:[{s:s},{s:s}],s:n}", "n2", "id", "42", "id", "43", "n3");
    json_t *m = qbc_api__nodes_merge("subscriptions", rows, answers, "n1");
    json_t *list = json_object_get(m, "subscriptions");
    is_int((int)json_array_size(list), 3, "this node's one and n2's two");
    ok(strcmp(json_string_value(json_object_get(json_array_get(list, 0), "node")), "n1") == 0 &&
           strcmp(json_string_value(json_object_get(json_array_get(list, 2), "id")), "43") == 0 &&
           strcmp(json_string_value(json_object_get(json_array_get(list, 2), "node")), "n2") == 0,
       "each tagged with its node, this node's first");
    json_t *un = json_object_get(m, "nodes_unanswered");
    ok(json_array_size(un) == 1 && strcmp(json_string_value(json_array_get(un, 0)), "n3") == 0,
       "n3, which did not answer, is named");
    ok(json_object_get(json_array_get(rows, 0), "node") == NULL, "the rows given are not changed");
    json_decref(m);
    json_decref(rows);
    json_decref(answers);
}

int main(void)
{
    is_int(qbc_api__forward_decide(1, 0), QBC_FWD_LOCAL, "owned here: answered here");
    is_int(qbc_api__forward_decide(1, 1), QBC_FWD_LOCAL, "owned here and forwarded by another node: answered here");
    is_int(qbc_api__forward_decide(0, 0), QBC_FWD_FORWARD, "another node's, its URL known: forwarded");
    is_int(qbc_api__forward_decide(0, 1), QBC_FWD_LOOP,
           "another node's but already forwarded: 503, never sent on (no ping-pong)");
    is_int(qbc_api__forward_decide(QBC_ENOTFOUND, 0), QBC_FWD_NO_OWNER, "no owner (or URL) known: 503");
    is_int(qbc_api__forward_decide(QBC_ENOTFOUND, 1), QBC_FWD_LOOP, "forwarded here and no owner known: 503 too");
    subtest("GET /admin/realms merge", test_merge);
    subtest("GET /admin/subscriptions merge", test_nodes_merge);
    return done_testing();
}
