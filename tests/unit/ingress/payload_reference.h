/*
 * payload_reference.h — the jansson-based payload parser that ingress/payload.c
 * replaced, kept as a test oracle (see payload_reference.c). Same contracts as the
 * functions of the same name without "ref_" in ingress.h.
 */
#ifndef QBC_PAYLOAD_REFERENCE_H
#define QBC_PAYLOAD_REFERENCE_H

#include "ingress.h"

int qbc_ref_payload_parse(const char *body, size_t len, qbc_payload_t *out);
void qbc_ref_payload_clear(qbc_payload_t *p);
int qbc_ref_entity_canonical(const char *name, size_t len, char out[QBC_ENTITY_MAX]);
qbc_op_t qbc_ref_op_parse(const char *word, size_t len);

#endif
