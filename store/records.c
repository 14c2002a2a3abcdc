/*
 * records.c — byte layouts of the store's keys and values.
 *
 * All integers are big-endian so that keys sort numerically and values read the
 * same on any host. Every value starts with a version byte so a later schema can
 * tell old records from new ones.
 *
 *   inbox value   [ver=1][flags][format][0][n_events u32][received_ns i64][raw body...]
 *   pending key   realm \0 Entity \0 id
 *   pending value [ver=1][last_op][0][0][op_mask u32][count u32][first_seq u64][last_seq u64][updated_ns i64]
 */
#include <string.h>
#include "store_internal.h"

const char *qbc_op_name(qbc_op_t op)
{
    switch (op) {
    case QBC_OP_CREATE:
        return "create";
    case QBC_OP_UPDATE:
        return "update";
    case QBC_OP_DELETE:
        return "delete";
    case QBC_OP_MERGE:
        return "merge";
    case QBC_OP_VOID:
        return "void";
    case QBC_OP_EMAILED:
        return "emailed";
    default:
        return "unknown";
    }
}

void qbc_store__inbox_header(unsigned char out[INBOX_HEADER_SIZE], uint8_t flags, uint8_t format, uint32_t n_events,
                             int64_t received_ns)
{
    out[0] = 1;
    out[1] = flags;
    out[2] = format;
    out[3] = 0;
    put_u32be(out + 4, n_events);
    put_u64be(out + 8, (uint64_t)received_ns);
}

int qbc_store__inbox_decode(uint64_t seq, const void *data, size_t len, qbc_inbox_record_t *rec)
{
    const unsigned char *p = data;

    if (len < INBOX_HEADER_SIZE || p[0] != 1)
        return QBC_EMALFORMED;
    memset(rec, 0, sizeof(*rec));
    rec->seq = seq;
    rec->flags = p[1];
    rec->format = p[2];
    rec->n_events = get_u32be(p + 4);
    rec->received_ns = (int64_t)get_u64be(p + 8);
    rec->body = (const char *)p + INBOX_HEADER_SIZE;
    rec->body_len = len - INBOX_HEADER_SIZE;
    return 0;
}

void qbc_store__pending_encode(const qbc_pending_rec_t *r, unsigned char out[PENDING_VALUE_SIZE])
{
    out[0] = 1;
    out[1] = r->last_op;
    out[2] = out[3] = 0;
    put_u32be(out + 4, r->op_mask);
    put_u32be(out + 8, r->count);
    put_u64be(out + 12, r->first_seq);
    put_u64be(out + 20, r->last_seq);
    put_u64be(out + 28, (uint64_t)r->updated_ns);
}

int qbc_store__pending_decode(const void *data, size_t len, qbc_pending_rec_t *r)
{
    const unsigned char *p = data;

    if (len < PENDING_VALUE_SIZE || p[0] != 1)
        return QBC_EMALFORMED;
    r->last_op = p[1];
    r->op_mask = get_u32be(p + 4);
    r->count = get_u32be(p + 8);
    r->first_seq = get_u64be(p + 12);
    r->last_seq = get_u64be(p + 20);
    r->updated_ns = (int64_t)get_u64be(p + 28);
    return 0;
}

/*
 * Folds a notice into a pending record. The operation that counts as "last" is the
 * one with the latest change time, not the latest arrival: Intuit delivers out of
 * order, and its timestamp is the source of truth (qbo-facts §1.5). Ties go to the
 * later arrival.
 */
void qbc_store__pending_fold(qbc_pending_rec_t *r, qbc_op_t op, int64_t updated_ns, uint64_t seq)
{
    if (r->count == 0) {
        r->first_seq = seq;
        r->updated_ns = updated_ns;
        r->last_op = (uint8_t)op;
    } else if (updated_ns >= r->updated_ns) {
        r->updated_ns = updated_ns;
        r->last_op = (uint8_t)op;
    }
    r->op_mask |= 1u << (unsigned)op;
    r->count++;
    if (seq > r->last_seq)
        r->last_seq = seq;
}

size_t qbc_store__pending_key(const char *realm, const char *entity, const char *id, char *buf)
{
    size_t a = strnlen(realm, QBC_REALM_MAX - 1), b = strnlen(entity, QBC_ENTITY_MAX - 1),
           c = strnlen(id, QBC_ID_MAX - 1);
    memcpy(buf, realm, a);
    buf[a] = '\0';
    memcpy(buf + a + 1, entity, b);
    buf[a + 1 + b] = '\0';
    memcpy(buf + a + b + 2, id, c);
    return a + b + c + 2;
}

int qbc_store__pending_key_split(const void *key, size_t len, char *buf, size_t bufsz, const char **realm,
                                 const char **entity, const char **id)
{
    if (len + 1 > bufsz)
        return QBC_EMALFORMED;
    memcpy(buf, key, len);
    buf[len] = '\0';
    char *z1 = memchr(buf, '\0', len);
    if (z1 == NULL)
        return QBC_EMALFORMED;
    char *z2 = memchr(z1 + 1, '\0', len - (size_t)(z1 + 1 - buf));
    if (z2 == NULL)
        return QBC_EMALFORMED;
    *realm = buf;
    *entity = z1 + 1;
    *id = z2 + 1;
    return 0;
}
