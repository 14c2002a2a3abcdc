/*
 * test_settings.c — delivery/settings.c: a create's defaults, filters checked and made
 * canonical, an update keeps what it does not name, bad values are refused with a reason,
 * and a secret rotation keeps the old secret for the grace period.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "delivery.h"
#include "../../tap.h"

static json_t *merge(const json_t *stored, const char *patch, char *why)
{
    json_t *p = json_loads(patch, 0, NULL), *out = NULL;
    int rc = qbc_delivery_settings_merge(stored, p, 1, &out, why, 200);
    json_decref(p);
    return rc == 0 ? out : NULL;
}

int main(void)
{
    char why[200];
    json_t *o = merge(NULL, "{\"url\":\"http://127.0.0.1:5000/h\"}", why);
    ok(o != NULL, "a create with a url alone");
    ok(json_is_null(json_object_get(o, "realms")) && json_is_null(json_object_get(o, "entities")) &&
           json_is_null(json_object_get(o, "ops")),
       "no filters: everything");
    is_int(json_integer_value(json_object_get(o, "batch_max")), QBC_DELIVERY_BATCH_DEFAULT, "the default batch");
    ok(json_is_false(json_object_get(o, "paused")) && json_is_string(json_object_get(o, "created_at")),
       "not paused, with its creation time");

    json_t *u = merge(o, "{\"entities\":[\"invoice\",\"CUSTOMER\"],\"ops\":[\"delete\"],\"batch_max\":5}", why);
    ok(u != NULL, "an update");
    is_str(json_string_value(json_array_get(json_object_get(u, "entities"), 0)), "Invoice", "entities made canonical");
    is_str(json_string_value(json_array_get(json_object_get(u, "entities"), 1)), "Customer", "each of them");
    is_str(json_string_value(json_object_get(u, "url")), "http://127.0.0.1:5000/h", "the url kept");
    is_int(json_integer_value(json_object_get(u, "batch_max")), 5, "batch_max changed");
    json_t *u2 = merge(u, "{\"entities\":null}", why);
    ok(u2 != NULL && json_is_null(json_object_get(u2, "entities")), "null clears a filter");
    ok(json_array_size(json_object_get(u2, "ops")) == 1, "and keeps the others");

    const char *bad[][2] = {{"{}", "url is required"},
                            {"{\"url\":5}", "url must be a string"},
                            {"{\"url\":\"gopher://x/\"}", "scheme"},
                            {"{\"url\":\"http://a/\",\"batch_max\":0}", "batch_max"},
                            {"{\"url\":\"http://a/\",\"batch_max\":1001}", "batch_max"},
                            {"{\"url\":\"http://a/\",\"ops\":[\"explode\"]}", "ops[0]"},
                            {"{\"url\":\"http://a/\",\"realms\":[]}", "realms"},
                            {"{\"url\":\"http://a/\",\"realms\":[\"a/b\"]}", "realms[0]"},
                            {"{\"url\":\"http://a/\",\"entities\":[\"In voice\"]}", "entities[0]"},
                            {"{\"url\":\"http://a/\",\"paused\":1}", "paused"},
                            {"[]", "object"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char name[200];
        json_t *x = merge(NULL, bad[i][0], why);
        snprintf(name, sizeof(name), "%s is refused, naming %s", bad[i][0], bad[i][1]);
        ok(x == NULL && strstr(why, bad[i][1]) != NULL, name);
        json_decref(x);
    }
    json_t *p = json_loads("{\"url\":\"http://127.0.0.1/\"}", 0, NULL), *x = NULL;
    ok(qbc_delivery_settings_merge(NULL, p, 0, &x, why, sizeof(why)) == QBC_EINVAL && strstr(why, "private"),
       "without allow_private, loopback is refused");
    json_decref(p);

    char *s1 = qbc_delivery_secrets_text(NULL, "whsec_one", 1000, 60);
    json_t *j1 = json_loads(s1, 0, NULL);
    ok(strcmp(json_string_value(json_object_get(j1, "current")), "whsec_one") == 0 &&
           json_is_null(json_object_get(j1, "previous")),
       "a first secret has no previous one");
    char *s2 = qbc_delivery_secrets_text(s1, "whsec_two", 1000, 60);
    json_t *j2 = json_loads(s2, 0, NULL);
    ok(strcmp(json_string_value(json_object_get(j2, "current")), "whsec_two") == 0 &&
           strcmp(json_string_value(json_object_get(j2, "previous")), "whsec_one") == 0,
       "a rotation keeps the old one as previous");
    is_int(json_integer_value(json_object_get(j2, "previous_until")), 1000 + 60 * 1000000000LL,
           "until the grace period ends");
    json_decref(o), json_decref(u), json_decref(u2), json_decref(j1), json_decref(j2);
    free(s1), free(s2);
    return done_testing();
}
