/*
 * inspect.c — read-only views of a store for operators and tests: `qbcdc inbox`,
 * `qbcdc pending`, `qbcdc stats`. They open the environment read-only, so they are
 * safe beside a running service. Output is one JSON object per line.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "inspect.h"
#include "store.h"

typedef struct {
    long limit, printed;
    int bodies;
} inbox_ctx_t;

static void print_json(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    if (s != NULL) {
        puts(s);
        free(s);
    }
    json_decref(o);
}

static const char *format_name(uint8_t f)
{
    return f == QBC_FORMAT_CLASSIC ? "classic" : f == QBC_FORMAT_CLOUDEVENTS ? "cloudevents" : "unknown";
}

static int inbox_cb(const qbc_inbox_record_t *r, void *p)
{
    inbox_ctx_t *ctx = p;
    char ts[QBC_TIME_BUFSZ];
    json_t *o = json_object();

    json_object_set_new(o, "seq", json_integer((json_int_t)r->seq));
    json_object_set_new(o, "received", json_string(qbc_time_format(r->received_ns, ts)));
    json_object_set_new(o, "format", json_string(format_name(r->format)));
    json_object_set_new(o, "events", json_integer(r->n_events));
    json_object_set_new(o, "bytes", json_integer((json_int_t)r->body_len));
    json_object_set_new(o, "quarantined", json_boolean(r->flags & QBC_INBOX_QUARANTINED));
    if (r->quarantine_reason != NULL)
        json_object_set_new(o, "reason", json_string(r->quarantine_reason));
    if (ctx->bodies) {
        json_t *b = json_stringn(r->body, r->body_len); /* NULL if not UTF-8 */
        if (b != NULL) {
            json_object_set_new(o, "body", b);
        } else {
            char *enc = qbc_alloc(QBC_BASE64_ENCODED_SIZE(r->body_len));
            qbc_base64_encode(r->body, r->body_len, enc);
            json_object_set_new(o, "body_base64", json_string(enc));
            free(enc);
        }
    }
    print_json(o);
    return ++ctx->printed >= ctx->limit;
}

static int pending_cb(const qbc_pending_t *p, void *ctxp)
{
    inbox_ctx_t *ctx = ctxp;
    char ts[QBC_TIME_BUFSZ];
    json_t *o = json_object(), *ops = json_array();

    json_object_set_new(o, "realm", json_string(p->realm));
    json_object_set_new(o, "entity", json_string(p->entity));
    json_object_set_new(o, "id", json_string(p->id));
    json_object_set_new(o, "op", json_string(qbc_op_name(p->last_op)));
    for (int op = QBC_OP_CREATE; op <= QBC_OP_EMAILED; op++)
        if (p->op_mask & (1u << op))
            json_array_append_new(ops, json_string(qbc_op_name((qbc_op_t)op)));
    json_object_set_new(o, "ops", ops);
    json_object_set_new(o, "count", json_integer(p->count));
    json_object_set_new(o, "first_seq", json_integer((json_int_t)p->first_seq));
    json_object_set_new(o, "last_seq", json_integer((json_int_t)p->last_seq));
    json_object_set_new(o, "last_updated",
                        p->updated_ns ? json_string(qbc_time_format(p->updated_ns, ts)) : json_null());
    print_json(o);
    return ++ctx->printed >= ctx->limit;
}

static int entity_cb(const char *realm, const char *entity, const char *id, const qbc_entity_rec_t *e, void *p)
{
    inbox_ctx_t *ctx = p;
    char ts[QBC_TIME_BUFSZ];
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:b,s:s,s:I}", "realm", realm, "entity", entity, "id", id, "version",
                          e->sync_token, "deleted", e->deleted, "source", qbc_source_name((qbc_source_t)e->source),
                          "feed_seq", (json_int_t)e->feed_seq);
    json_object_set_new(o, "last_updated",
                        e->updated_ns ? json_string(qbc_time_format(e->updated_ns, ts)) : json_null());
    print_json(o);
    return ++ctx->printed >= ctx->limit;
}

static int feed_cb(const qbc_feed_rec_t *r, void *p)
{
    inbox_ctx_t *ctx = p;
    fwrite(r->json, 1, r->json_len, stdout);
    fputc('\n', stdout);
    return ++ctx->printed >= ctx->limit;
}

static int dead_cb(const qbc_dead_t *d, void *p)
{
    inbox_ctx_t *ctx = p;
    char ts[QBC_TIME_BUFSZ];
    print_json(json_pack("{s:I,s:s,s:s,s:s,s:s,s:i,s:s,s:s}", "id", (json_int_t)d->id, "realm", d->realm, "entity",
                         d->entity, "entity_id", d->entity_id, "op", qbc_op_name(d->last_op), "attempts",
                         (int)d->attempts, "error", d->error, "died", qbc_time_format(d->died_ns, ts)));
    return ++ctx->printed >= ctx->limit;
}

int qbc_inspect(const char *what, const char *data_dir, const char *realm, long after, long limit, int bodies)
{
    qbc_store_t *s;
    int rc = qbc_store_open_readonly(data_dir, &s);
    inbox_ctx_t ctx = {limit > 0 ? limit : -1, 0, bodies};

    if (ctx.limit < 0)
        ctx.limit = 0x7fffffff;
    if (rc != 0) {
        fprintf(stderr, "qbcdc: cannot open store in %s: %s\n", data_dir, qbc_strerror(rc));
        return 1;
    }
    if (strcmp(what, "inbox") == 0) {
        rc = qbc_store_inbox_scan(s, (uint64_t)after, inbox_cb, &ctx);
    } else if (strcmp(what, "pending") == 0) {
        rc = qbc_store_pending_scan(s, realm, pending_cb, &ctx);
    } else if (strcmp(what, "entities") == 0) {
        rc = qbc_store_entity_scan(s, realm, entity_cb, &ctx);
    } else if (strcmp(what, "feed") == 0) {
        rc = qbc_store_feed_scan(s, (uint64_t)after, (size_t)ctx.limit, realm, NULL, feed_cb, &ctx, NULL);
    } else if (strcmp(what, "dead") == 0) {
        rc = qbc_store_dead_scan(s, dead_cb, &ctx);
    } else {
        qbc_store_stats_t st;
        if ((rc = qbc_store_stats(s, &st)) == 0) {
            json_t *o = json_object();
            const char *feed_id = qbc_store_feed_id(s); /* "": a store no writable open has given one yet */
            json_object_set_new(o, "feed_id", feed_id[0] ? json_string(feed_id) : json_null());
            json_object_set_new(o, "inbox_depth", json_integer((json_int_t)st.inbox_depth));
            json_object_set_new(o, "quarantined", json_integer((json_int_t)st.quarantined));
            json_object_set_new(o, "pending", json_integer((json_int_t)st.pending));
            json_object_set_new(o, "cloudevent_ids", json_integer((json_int_t)st.event_ids));
            json_object_set_new(o, "last_inbox_seq", json_integer((json_int_t)st.last_inbox_seq));
            json_object_set_new(o, "feed_pruned_through", json_integer((json_int_t)st.feed_pruned_through));
            json_object_set_new(o, "entities", json_integer((json_int_t)st.entities));
            json_object_set_new(o, "feed_records", json_integer((json_int_t)st.feed_records));
            json_object_set_new(o, "last_feed_seq", json_integer((json_int_t)st.last_feed_seq));
            json_object_set_new(o, "dead_letters", json_integer((json_int_t)st.dead_letters));
            json_object_set_new(o, "realms", json_integer((json_int_t)st.realms));
            json_object_set_new(o, "used_bytes", json_integer((json_int_t)st.used_bytes));
            json_object_set_new(o, "map_bytes", json_integer((json_int_t)st.map_bytes));
            print_json(o);
        }
    }
    uint64_t pruned = rc == QBC_EGONE ? qbc_store_feed_pruned(s) : 0;
    qbc_store_close(s);
    if (rc == QBC_EGONE) {
        fprintf(stderr, "qbcdc: the feed up to seq %llu was removed by the feed retention; read on with --after %llu\n",
                (unsigned long long)pruned, (unsigned long long)pruned);
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "qbcdc: reading the store failed: %s\n", qbc_strerror(rc));
        return 1;
    }
    return 0;
}
