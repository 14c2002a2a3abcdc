/*
 * json_shapes.c — QBO's wire shapes for entities and faults.
 *
 * Sources (qbo-facts.md): entity read §9 (key order follows the Invoice sample:
 * SyncToken, MetaData, Id, domain, sparse); the deleted stub §2 (status, domain,
 * Id, MetaData.LastUpdatedTime); Fault §6 (Message, Detail, code, element; code is
 * a string, Error an array); the gateway's lowercase 401 §6 (time is epoch ms);
 * the throttle XML §5.
 *
 * Entity bodies carry only fields whose names appear in the sources: Active
 * (name-list entities, §3), TotalAmt (§4 query sample) and PrivateNote ("Voided",
 * §9). qbosim does not invent the rest of an entity.
 */
#include <stdio.h>
#include <string.h>
#include "common.h"
#include "sim.h"

char *sim_json_dump(const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
    if (!s)
        qbc_fatal("json_dumps failed");
    return s;
}

json_t *sim_entity_json(int etype, const sim_entity_t *e)
{
    char buf[40], id[16];
    json_t *o = json_object();
    snprintf(id, sizeof(id), "%u", e->id);
    if (e->deleted) {
        json_object_set_new(o, "status", json_string("Deleted"));
        json_object_set_new(o, "domain", json_string("QBO"));
        json_object_set_new(o, "Id", json_string(id));
        json_t *md = json_object();
        json_object_set_new(md, "LastUpdatedTime", json_string(sim_time_pacific(e->update_ns, 0, 1, buf)));
        json_object_set_new(o, "MetaData", md);
        return o;
    }
    if (sim_etype_is_namelist(etype)) {
        json_object_set_new(o, "Active", json_boolean(e->active));
    } else {
        json_object_set_new(o, "TotalAmt", json_real((double)e->amount_cents / 100.0));
        if (e->voided)
            json_object_set_new(o, "PrivateNote", json_string("Voided"));
    }
    char tok[16];
    snprintf(tok, sizeof(tok), "%u", e->sync_token);
    json_object_set_new(o, "SyncToken", json_string(tok));
    json_t *md = json_object();
    json_object_set_new(md, "CreateTime", json_string(sim_time_pacific(e->create_ns, 0, 1, buf)));
    json_object_set_new(md, "LastUpdatedTime", json_string(sim_time_pacific(e->update_ns, 0, 1, buf)));
    json_object_set_new(o, "MetaData", md);
    json_object_set_new(o, "Id", json_string(id));
    json_object_set_new(o, "domain", json_string("QBO"));
    json_object_set_new(o, "sparse", json_false());
    return o;
}

json_t *sim_fault_json(const char *type, const char *code, const char *message, const char *detail, int64_t now_ns)
{
    char buf[40];
    json_t *err = json_object();
    json_object_set_new(err, "Message", json_string(message));
    json_object_set_new(err, "Detail", json_string(detail ? detail : message));
    json_object_set_new(err, "code", json_string(code));
    json_object_set_new(err, "element", json_string(""));
    json_t *errs = json_array();
    json_array_append_new(errs, err);
    json_t *fault = json_object();
    json_object_set_new(fault, "Error", errs);
    json_object_set_new(fault, "type", json_string(type));
    json_t *root = json_object();
    json_object_set_new(root, "Fault", fault);
    json_object_set_new(root, "time", json_string(sim_time_pacific(now_ns, 1, 1, buf)));
    return root;
}

json_t *sim_auth_fault_json(const char *detail, int64_t now_ns)
{
    json_t *err = json_object();
    json_object_set_new(err, "message", json_string("message=AuthenticationFailed; errorCode=003200; statusCode=401"));
    json_object_set_new(err, "detail", json_string(detail));
    json_object_set_new(err, "code", json_string("3200"));
    json_object_set_new(err, "element", json_null());
    json_t *errs = json_array();
    json_array_append_new(errs, err);
    json_t *fault = json_object();
    json_object_set_new(fault, "error", errs);
    json_object_set_new(fault, "type", json_string("AUTHENTICATION"));
    json_t *root = json_object();
    json_object_set_new(root, "warnings", json_null());
    json_object_set_new(root, "intuitObject", json_null());
    json_object_set_new(root, "fault", fault);
    json_object_set_new(root, "time", json_integer(now_ns / 1000000));
    return root;
}

char *sim_throttle_xml(int64_t now_ns)
{
    char buf[40], *out;
    if (asprintf(
            &out,
            "<IntuitResponse time=\"%s\" xmlns=\"http://schema.intuit.com/finance/v3\">\n"
            " <Fault type=\"SERVICE\"><Error code=\"3001\">\n"
            "  <Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message>\n"
            "  <Detail>The request limit was reached.  Try again later</Detail></Error></Fault></IntuitResponse>\n",
            sim_time_pacific(now_ns, 1, 1, buf)) < 0)
        qbc_fatal("out of memory");
    return out;
}
