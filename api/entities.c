/*
 * entities.c — reads of the latest stored entity versions (feed.c routes /v1 here).
 *
 *   GET /v1/realms/{realm}/entities/{Entity}/{id}        the latest stored version
 *   GET /v1/realms/{realm}/entities/{Entity}?after_id=&limit=   pages through the latest versions
 *
 * The entity's data is spliced in from the stored bytes, exactly as QBO sent them. Both read
 * the store /v1/changes reads (api->feed_store): in cluster mode the copy of the cluster feed,
 * which keeps every realm's latest versions as its records report them, so any node answers
 * for every realm, with the stream's sequences.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "api_internal.h"

#define LIST_DEFAULT_LIMIT 100
#define LIST_MAX_LIMIT 1000

/*
 * appends one stored version as the entity read and the listing answer it:
 * {["realm","entity",]"id","version","deleted","last_updated"[,"data"]}. version is null
 * for a tombstone of an entity never held live; data is spliced in from the stored bytes,
 * exactly as QBO sent them. @return 0, or -1 when jansson could not build the head
 */
static int entity_json(qbc_buf_t *b, const char *realm, const char *entity, const char *id, const qbc_entity_rec_t *rec)
{
    char ts[QBC_TIME_BUFSZ];
    json_t *o = json_object();
    if (realm != NULL) {
        json_object_set_new(o, "realm", json_string(realm));
        json_object_set_new(o, "entity", json_string(entity));
    }
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "version", rec->sync_token[0] ? json_string(rec->sync_token) : json_null());
    json_object_set_new(o, "deleted", json_boolean(rec->deleted));
    json_object_set_new(o, "last_updated",
                        rec->updated_ns ? json_string(qbc_time_format(rec->updated_ns, ts)) : json_null());
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (text == NULL)
        return -1;
    qbc_buf_append(b, text, strlen(text) - 1); /* without its closing brace */
    free(text);
    if (!rec->deleted && rec->data != NULL) {
        qbc_buf_append(b, ",\"data\":", 8);
        qbc_buf_append(b, rec->data, rec->data_len);
    }
    qbc_buf_append(b, "}", 1);
    return 0;
}

int qbc_api__get_entity(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t realm, h2o_iovec_t entity, h2o_iovec_t id)
{
    char r[QBC_REALM_MAX], e[QBC_ENTITY_MAX], i[QBC_ID_MAX];
    qbc_entity_rec_t rec;

    if (!qbc_api__valid_realm(realm.base, realm.len) || id.len == 0 || id.len >= sizeof(i) ||
        qbc_entity_canonical(entity.base, entity.len, e) != 0) {
        qbc_api__respond_error(req, 404, "Not Found", "not_found", "no such entity");
        return 0;
    }
    snprintf(r, sizeof(r), "%.*s", (int)realm.len, realm.base);
    snprintf(i, sizeof(i), "%.*s", (int)id.len, id.base);
    int rc = qbc_store_entity_get(api->feed_store, r, e, i, &rec);
    if (rc == QBC_ENOTFOUND) {
        qbc_api__respond_error(req, 404, "Not Found", "not_found", "this entity has never been seen");
        return 0;
    }
    if (rc != 0) {
        qbc_api__respond_error(req, 503, "Service Unavailable", "store_unavailable", "cannot read the store");
        return 0;
    }
    qbc_buf_t b = {0};
    if (entity_json(&b, r, e, i, &rec) != 0) {
        qbc_entity_rec_clear(&rec);
        qbc_buf_free(&b, 0);
        qbc_api__respond_error(req, 503, "Service Unavailable", "out_of_memory", "cannot render the entity");
        return 0;
    }
    qbc_api__respond_json(req, 200, "OK", b.data);
    qbc_buf_free(&b, 0);
    qbc_entity_rec_clear(&rec);
    return 0;
}

/* one page of the entity listing, as it is written */
typedef struct {
    qbc_buf_t b;
    size_t n;
    char last_id[QBC_ID_MAX];
    int failed;
} list_ctx_t;

/* {"id","version","last_updated","deleted"[,"data"]}, data spliced in from the stored bytes */
static int list_cb(const char *realm, const char *entity, const char *id, const qbc_entity_rec_t *rec, void *p)
{
    list_ctx_t *c = p;
    (void)realm, (void)entity;
    if (c->n++ > 0)
        qbc_buf_append(&c->b, ",", 1);
    if (entity_json(&c->b, NULL, NULL, id, rec) != 0) {
        c->failed = 1;
        return 1;
    }
    snprintf(c->last_id, sizeof(c->last_id), "%s", id);
    return 0;
}

/*
 * GET /v1/realms/{realm}/entities/{Entity}?after_id=&limit=
 * {"realm","entity","entities":[...],"next_after_id":"<id>"|null,"feed_id"}: the latest
 * version of every entity of that type, in id byte order, a page at a time. A consumer
 * resyncs with it: note the feed's head (an answer of /v1/changes), list every page,
 * then read the feed on from that head.
 */
int qbc_api__list_entities(qbc_api_t *api, h2o_req_t *req, h2o_iovec_t realm, h2o_iovec_t entity)
{
    static const char *const known[] = {"after_id", "limit", NULL};
    char r[QBC_REALM_MAX], e[QBC_ENTITY_MAX], after_id[QBC_ID_MAX * 3], v[32], bad[64], msg[160], *end;
    unsigned seen;
    int repeated, more;
    long limit = LIST_DEFAULT_LIMIT;

    if (qbc_api__query_check(req, known, &seen, bad, sizeof(bad), &repeated) != 0) {
        snprintf(msg, sizeof(msg),
                 repeated ? "parameter %s is given twice"
                          : "unknown parameter \"%s\": this endpoint takes after_id and limit",
                 bad);
        qbc_api__respond_error(req, 400, "Bad Request", "bad_parameter", msg);
        return 0;
    }
    if (!qbc_api__valid_realm(realm.base, realm.len)) {
        qbc_api__respond_error(req, 400, "Bad Request", "bad_realm", "realm ids are 1-63 letters, digits, '-' or '_'");
        return 0;
    }
    if (qbc_entity_canonical(entity.base, entity.len, e) != 0) {
        qbc_api__respond_error(req, 400, "Bad Request", "bad_entity", "entity must be a QBO entity name");
        return 0;
    }
    snprintf(r, sizeof(r), "%.*s", (int)realm.len, realm.base);
    after_id[0] = '\0';
    if ((seen & 1) != 0 &&
        (qbc_api__query_param(req, "after_id", after_id, sizeof(after_id)) != 0 || strlen(after_id) >= QBC_ID_MAX)) {
        qbc_api__respond_error(req, 400, "Bad Request", "bad_after_id",
                               "after_id must be an entity id (at most 63 bytes)");
        return 0;
    }
    if ((seen & 2) != 0) {
        limit = qbc_api__query_param(req, "limit", v, sizeof(v)) == 0 && v[0] != '\0' ? strtol(v, &end, 10) : 0;
        if (limit < 1 || limit > LIST_MAX_LIMIT || *end != '\0') {
            qbc_api__respond_error(req, 400, "Bad Request", "bad_limit", "limit must be from 1 to 1000");
            return 0;
        }
    }
    list_ctx_t c = {{0}, 0, {0}, 0};
    int rc = qbc_store_entity_list(api->feed_store, r, e, after_id, (size_t)limit, list_cb, &c, &more);
    if (rc != 0 || c.failed) {
        free(c.b.data);
        qbc_api__respond_error(req, 503, "Service Unavailable", "store_unavailable", "cannot read the store");
        return 0;
    }
    json_t *head = json_pack("{s:s,s:s}", "realm", r, "entity", e);
    char id[QBC_FEED_ID_LEN + 1];
    qbc_api__feed_id(api, id);
    json_t *tail = json_pack("{s:o,s:s}", "next_after_id", more ? json_string(c.last_id) : json_null(), "feed_id", id);
    char *head_text = json_dumps(head, JSON_COMPACT), *tail_text = json_dumps(tail, JSON_COMPACT);
    json_decref(head);
    json_decref(tail);
    qbc_buf_t out = {0};
    qbc_buf_append(&out, head_text, strlen(head_text) - 1);
    qbc_buf_append(&out, ",\"entities\":[", 13);
    if (c.b.len > 0)
        qbc_buf_append(&out, c.b.data, c.b.len);
    qbc_buf_append(&out, "],", 2);
    qbc_buf_append(&out, tail_text + 1, strlen(tail_text + 1)); /* its members and closing brace */
    qbc_api__respond_json(req, 200, "OK", out.data);
    free(out.data);
    free(head_text);
    free(tail_text);
    free(c.b.data);
    return 0;
}
