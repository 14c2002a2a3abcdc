/*
 * settings.c — a subscription's settings as the admin API takes them and the store keeps
 * them (JSON), and the secrets text the store seals.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include "delivery.h"
#include "ingress.h"

static const char *const op_names[] = {"create", "update", "delete", "merge", "void", "emailed", "snapshot", NULL};

/* a list filter: null (all) or a non-empty array of distinct short strings; entities made canonical */
static int list_filter(const json_t *v, const char *name, int kind, json_t **out, char *why, size_t whysz)
{
    if (v == NULL || json_is_null(v)) {
        *out = json_null();
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > 256) {
        snprintf(why, whysz, "%s must be null or a non-empty array of at most 256 strings", name);
        return QBC_EINVAL;
    }
    json_t *a = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        const char *s = json_string_value(e);
        char canon[QBC_ENTITY_MAX];
        size_t len = s != NULL ? strlen(s) : 0;
        int bad = s == NULL || len == 0;
        if (!bad && kind == 'r')
            bad = len >= QBC_REALM_MAX ||
                  strspn(s, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_") != len;
        if (!bad && kind == 'e') {
            bad = qbc_entity_canonical(s, len, canon) != 0;
            s = canon;
        }
        if (!bad && kind == 'o') {
            bad = 1;
            for (int k = 0; op_names[k] != NULL; k++)
                bad = bad && strcmp(op_names[k], s) != 0;
        }
        if (bad) {
            snprintf(why, whysz, "%s[%zu] is not a %s", name, i,
                     kind == 'r'   ? "realm id"
                     : kind == 'e' ? "QBO entity name"
                                   : "feed op (create, update, ...)");
            json_decref(a);
            return QBC_EINVAL;
        }
        json_array_append_new(a, json_string(s));
    }
    *out = a;
    return 0;
}

int qbc_delivery_settings_merge(const json_t *stored, const json_t *patch, int allow_private, json_t **out, char *why,
                                size_t whysz)
{
    json_t *o = stored != NULL ? json_deep_copy(stored) : json_object();
    const json_t *v;
    json_t *f;
    *out = NULL;
    if (!json_is_object(patch)) {
        snprintf(why, whysz, "the body must be a JSON object");
        goto Fail;
    }
    if ((v = json_object_get(patch, "url")) != NULL) {
        if (!json_is_string(v)) {
            snprintf(why, whysz, "url must be a string");
            goto Fail;
        }
        if (qbc_delivery_url_check(json_string_value(v), allow_private, why, whysz) != 0)
            goto Fail;
        json_object_set(o, "url", (json_t *)v);
    } else if (json_object_get(o, "url") == NULL) {
        snprintf(why, whysz, "url is required");
        goto Fail;
    }
    static const struct {
        const char *name;
        int kind;
    } lists[] = {{"realms", 'r'}, {"entities", 'e'}, {"ops", 'o'}};
    for (size_t i = 0; i < 3; i++) {
        v = json_object_get(patch, lists[i].name);
        if (v == NULL && json_object_get(o, lists[i].name) != NULL)
            continue;
        if (list_filter(v, lists[i].name, lists[i].kind, &f, why, whysz) != 0)
            goto Fail;
        json_object_set_new(o, lists[i].name, f);
    }
    if ((v = json_object_get(patch, "batch_max")) != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > QBC_DELIVERY_BATCH_MAX) {
            snprintf(why, whysz, "batch_max must be an integer from 1 to %d", QBC_DELIVERY_BATCH_MAX);
            goto Fail;
        }
        json_object_set(o, "batch_max", (json_t *)v);
    } else if (json_object_get(o, "batch_max") == NULL) {
        json_object_set_new(o, "batch_max", json_integer(QBC_DELIVERY_BATCH_DEFAULT));
    }
    if ((v = json_object_get(patch, "paused")) != NULL) {
        if (!json_is_boolean(v)) {
            snprintf(why, whysz, "paused must be true or false");
            goto Fail;
        }
        json_object_set(o, "paused", (json_t *)v);
    } else if (json_object_get(o, "paused") == NULL) {
        json_object_set_new(o, "paused", json_false());
    }
    if (json_object_get(o, "created_at") == NULL) {
        char ts[QBC_TIME_BUFSZ];
        json_object_set_new(o, "created_at", json_string(qbc_time_format(qbc_now_ns(), ts)));
    }
    *out = o;
    return 0;
Fail:
    json_decref(o);
    return QBC_EINVAL;
}

char *qbc_delivery_secrets_text(const char *old, const char *current, int64_t now_ns, int64_t grace_s)
{
    json_t *o = json_pack("{s:s,s:n,s:I}", "current", current, "previous", "previous_until", (json_int_t)0);
    if (old != NULL) {
        json_t *prev = json_loads(old, 0, NULL);
        const char *cur = json_string_value(json_object_get(prev, "current"));
        if (cur != NULL && strcmp(cur, current) != 0) {
            json_object_set_new(o, "previous", json_string(cur));
            json_object_set_new(o, "previous_until", json_integer((json_int_t)(now_ns + grace_s * 1000000000LL)));
        }
        json_decref(prev); /* (jansson does not wipe its strings: the text is short-lived) */
    }
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}
