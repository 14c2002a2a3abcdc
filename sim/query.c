/*
 * query.c — the subset of QBO's query language that clients use to page and
 * backfill (qbo-facts §3):
 *
 *   SELECT * | COUNT(*) FROM <Entity> [WHERE <cond> [AND <cond>]...]
 *     [ORDERBY|ORDER BY <field> [ASC|DESC][, ...]] [STARTPOSITION n] [MAXRESULTS n]
 *   <cond> := <field> (= | < | > | <= | >=) <value> | <field> IN (<value>, ...) | <field> LIKE '<text>'
 *   <value> := 'quoted' | true | false
 *
 * Keywords and field names are case-insensitive; the entity name is not. OR is
 * refused, as QBO refuses it. An unquoted integer value is a parse error, exactly
 * the trap that bites clients writing `Id IN (1, 2)` (§3, [S48]). MAXRESULTS over
 * 1000 is refused with QBO's QueryValidationError text; the default page is 100.
 * `SELECT * FROM Customer` only returns active name-list records unless the query
 * mentions Active (§3).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common.h"
#include "sim.h"

enum tok_kind { T_END, T_IDENT, T_STRING, T_INT, T_STAR, T_LP, T_RP, T_COMMA, T_OP, T_BAD };

typedef struct {
    const char *s, *end, *p;
    int kind;
    const char *tb; /* token text */
    size_t tl;
    char *sval; /* decoded string literal (owned) */
    int op;
} lexer_t;

static void lex_next(lexer_t *lx)
{
    free(lx->sval);
    lx->sval = NULL;
    while (lx->p < lx->end && isspace((unsigned char)*lx->p))
        lx->p++;
    lx->tb = lx->p;
    lx->tl = 0;
    if (lx->p >= lx->end) {
        lx->kind = T_END;
        return;
    }
    char c = *lx->p;
    if (isalpha((unsigned char)c) || c == '_') {
        while (lx->p < lx->end && (isalnum((unsigned char)*lx->p) || *lx->p == '_' || *lx->p == '.'))
            lx->p++;
        lx->kind = T_IDENT;
    } else if (isdigit((unsigned char)c)) {
        while (lx->p < lx->end && isdigit((unsigned char)*lx->p))
            lx->p++;
        lx->kind = T_INT;
    } else if (c == '\'') {
        size_t cap = (size_t)(lx->end - lx->p), n = 0;
        char *out = qbc_alloc(cap + 1);
        lx->p++;
        for (;;) {
            if (lx->p >= lx->end) {
                free(out);
                lx->kind = T_BAD;
                lx->tl = (size_t)(lx->p - lx->tb);
                return;
            }
            if (*lx->p == '\\' && lx->p + 1 < lx->end) {
                out[n++] = lx->p[1];
                lx->p += 2;
            } else if (*lx->p == '\'') {
                if (lx->p + 1 < lx->end && lx->p[1] == '\'') {
                    out[n++] = '\'';
                    lx->p += 2;
                } else {
                    lx->p++;
                    break;
                }
            } else {
                out[n++] = *lx->p++;
            }
        }
        out[n] = '\0';
        lx->sval = out;
        lx->kind = T_STRING;
    } else if (c == '*') {
        lx->p++;
        lx->kind = T_STAR;
    } else if (c == '(') {
        lx->p++;
        lx->kind = T_LP;
    } else if (c == ')') {
        lx->p++;
        lx->kind = T_RP;
    } else if (c == ',') {
        lx->p++;
        lx->kind = T_COMMA;
    } else if (c == '=' || c == '<' || c == '>') {
        lx->p++;
        lx->kind = T_OP;
        if (c == '=') {
            lx->op = SIM_Q_EQ;
        } else if (lx->p < lx->end && *lx->p == '=') {
            lx->p++;
            lx->op = c == '<' ? SIM_Q_LE : SIM_Q_GE;
        } else {
            lx->op = c == '<' ? SIM_Q_LT : SIM_Q_GT;
        }
    } else {
        lx->p++;
        lx->kind = T_BAD;
    }
    lx->tl = (size_t)(lx->p - lx->tb);
}

static int is_kw(const lexer_t *lx, const char *kw)
{
    return lx->kind == T_IDENT && strlen(kw) == lx->tl && strncasecmp(lx->tb, kw, lx->tl) == 0;
}

static const char *kind_name(int k)
{
    switch (k) {
    case T_END:
        return "<EOF>";
    case T_INT:
        return "<INTEGER>";
    case T_STRING:
        return "<STRING>";
    case T_IDENT:
        return "<IDENTIFIER>";
    default:
        return "<TOKEN>";
    }
}

/* QBO's parser reports JavaCC-style: Encountered " <INTEGER> "1 "" at line 1, column 33. */
static int parse_error(lexer_t *lx, char *err, size_t errsz)
{
    snprintf(err, errsz, "QueryParserError: Encountered \" %s \"%.*s \"\" at line 1, column %d.", kind_name(lx->kind),
             (int)(lx->tl > 40 ? 40 : lx->tl), lx->tb, (int)(lx->tb - lx->s) + 1);
    return QBC_EMALFORMED;
}

static int validation_error(char *err, size_t errsz, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(err, errsz, "QueryValidationError: ");
    va_start(ap, fmt);
    vsnprintf(err + n, errsz - (size_t)n, fmt, ap);
    va_end(ap);
    return QBC_EMALFORMED;
}

static int field_lookup(const char *s, size_t len)
{
    static const struct {
        const char *name;
        int f;
    } fields[] = {{"Id", SIM_F_ID},
                  {"SyncToken", SIM_F_SYNCTOKEN},
                  {"MetaData.CreateTime", SIM_F_CREATED},
                  {"MetaData.LastUpdatedTime", SIM_F_UPDATED},
                  {"Active", SIM_F_ACTIVE},
                  {"TotalAmt", SIM_F_TOTALAMT}};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (strlen(fields[i].name) == len && strncasecmp(fields[i].name, s, len) == 0)
            return fields[i].f;
    return -1;
}

/* parses a decimal amount "300.00" into cents. */
static int parse_cents(const char *s, int64_t *out)
{
    char *end;
    double d = strtod(s, &end);
    if (end == s || *end != '\0')
        return -1;
    *out = (int64_t)(d * 100.0 + (d >= 0 ? 0.5 : -0.5));
    return 0;
}

/* converts the current literal token into a value typed for field. */
static int take_value(lexer_t *lx, int field, sim_qval_t *v, char *err, size_t errsz)
{
    memset(v, 0, sizeof(*v));
    if (lx->kind == T_IDENT && (is_kw(lx, "true") || is_kw(lx, "false"))) {
        if (field != SIM_F_ACTIVE)
            return validation_error(err, errsz, "invalid value for property");
        v->is_bool = 1;
        v->b = is_kw(lx, "true");
        lex_next(lx);
        return 0;
    }
    if (lx->kind != T_STRING)
        return parse_error(lx, err, errsz);
    const char *s = lx->sval;
    char *end;
    switch (field) {
    case SIM_F_ID:
    case SIM_F_SYNCTOKEN:
        v->num = strtoll(s, &end, 10);
        if (end == s || *end != '\0')
            v->num = -1; /* matches nothing */
        break;
    case SIM_F_CREATED:
    case SIM_F_UPDATED:
        if (sim_time_parse_qbo(s, strlen(s), &v->num) != 0)
            return validation_error(err, errsz, "invalid date time value '%.60s'", s);
        break;
    case SIM_F_ACTIVE:
        v->is_bool = 1;
        v->b = strcasecmp(s, "true") == 0;
        break;
    case SIM_F_TOTALAMT:
        if (parse_cents(s, &v->num) != 0)
            return validation_error(err, errsz, "invalid numeric value '%.60s'", s);
        break;
    }
    v->str = lx->sval;
    lx->sval = NULL;
    lex_next(lx);
    return 0;
}

static int take_number(lexer_t *lx, long *out, char *err, size_t errsz)
{
    if (lx->kind != T_INT)
        return parse_error(lx, err, errsz);
    char buf[24];
    size_t n = lx->tl < sizeof(buf) - 1 ? lx->tl : sizeof(buf) - 1;
    memcpy(buf, lx->tb, n);
    buf[n] = '\0';
    *out = strtol(buf, NULL, 10);
    lex_next(lx);
    return 0;
}

void sim_query_dispose(sim_query_t *q)
{
    for (size_t i = 0; i < q->nconds; i++) {
        for (size_t k = 0; k < q->conds[i].nvals; k++)
            free(q->conds[i].vals[k].str);
        free(q->conds[i].vals);
    }
    q->nconds = 0;
}

int sim_query_parse(const char *s, size_t len, sim_query_t *q, char *err, size_t errsz)
{
    lexer_t lx = {.s = s, .end = s + len, .p = s};
    int rc = QBC_EMALFORMED;
    memset(q, 0, sizeof(*q));
    q->order_field = -1;
    q->start = 1;
    q->max = 100;
    q->etype = -1;
    err[0] = '\0';

    lex_next(&lx);
    if (!is_kw(&lx, "select"))
        goto Error;
    lex_next(&lx);
    if (lx.kind == T_STAR) {
        lex_next(&lx);
    } else if (is_kw(&lx, "count")) {
        lex_next(&lx);
        if (lx.kind != T_LP)
            goto Error;
        lex_next(&lx);
        if (lx.kind != T_STAR)
            goto Error;
        lex_next(&lx);
        if (lx.kind != T_RP)
            goto Error;
        lex_next(&lx);
        q->count = 1;
    } else {
        goto Error; /* projections are not supported (§3) */
    }
    if (!is_kw(&lx, "from"))
        goto Error;
    lex_next(&lx);
    if (lx.kind != T_IDENT)
        goto Error;
    q->etype = sim_etype_lookup(lx.tb, lx.tl, 1);
    if (q->etype < 0) {
        rc = validation_error(err, errsz, "%.*s is not supported.", (int)(lx.tl > 60 ? 60 : lx.tl), lx.tb);
        goto Exit;
    }
    lex_next(&lx);

    if (is_kw(&lx, "where")) {
        do {
            lex_next(&lx);
            if (lx.kind != T_IDENT)
                goto Error;
            int field = field_lookup(lx.tb, lx.tl);
            if (field < 0) {
                rc = validation_error(err, errsz, "property '%.*s' is not queryable", (int)(lx.tl > 60 ? 60 : lx.tl),
                                      lx.tb);
                goto Exit;
            }
            if (q->nconds == SIM_Q_MAX_CONDS) {
                rc = validation_error(err, errsz, "too many conditions");
                goto Exit;
            }
            sim_qcond_t *c = &q->conds[q->nconds++];
            c->field = field;
            lex_next(&lx);
            if (lx.kind == T_OP) {
                c->op = lx.op;
                lex_next(&lx);
                c->vals = qbc_calloc(1, sizeof(*c->vals));
                if ((rc = take_value(&lx, field, &c->vals[0], err, errsz)) != 0)
                    goto Exit;
                c->nvals = 1;
            } else if (is_kw(&lx, "like")) {
                c->op = SIM_Q_LIKE;
                lex_next(&lx);
                if (lx.kind != T_STRING)
                    goto Error;
                c->vals = qbc_calloc(1, sizeof(*c->vals));
                if ((rc = take_value(&lx, field, &c->vals[0], err, errsz)) != 0)
                    goto Exit;
                c->nvals = 1;
            } else if (is_kw(&lx, "in")) {
                c->op = SIM_Q_IN;
                lex_next(&lx);
                if (lx.kind != T_LP)
                    goto Error;
                lex_next(&lx);
                for (;;) {
                    if (c->nvals == SIM_Q_MAX_VALUES) {
                        rc = validation_error(err, errsz, "too many values in IN list");
                        goto Exit;
                    }
                    c->vals = qbc_realloc(c->vals, (c->nvals + 1) * sizeof(*c->vals));
                    if ((rc = take_value(&lx, field, &c->vals[c->nvals], err, errsz)) != 0)
                        goto Exit;
                    c->nvals++;
                    if (lx.kind == T_COMMA) {
                        lex_next(&lx);
                        continue;
                    }
                    if (lx.kind != T_RP)
                        goto Error;
                    lex_next(&lx);
                    break;
                }
            } else {
                goto Error;
            }
        } while (is_kw(&lx, "and"));
    }

    if (is_kw(&lx, "orderby") || is_kw(&lx, "order")) {
        if (is_kw(&lx, "order")) {
            lex_next(&lx);
            if (!is_kw(&lx, "by"))
                goto Error;
        }
        int first = 1;
        do {
            lex_next(&lx);
            if (lx.kind != T_IDENT)
                goto Error;
            int field = field_lookup(lx.tb, lx.tl);
            if (field < 0) {
                rc = validation_error(err, errsz, "property '%.*s' is not sortable", (int)(lx.tl > 60 ? 60 : lx.tl),
                                      lx.tb);
                goto Exit;
            }
            lex_next(&lx);
            int desc = 0;
            if (is_kw(&lx, "asc")) {
                lex_next(&lx);
            } else if (is_kw(&lx, "desc")) {
                desc = 1;
                lex_next(&lx);
            }
            if (first) { /* later keys only break ties; Id always does that here */
                q->order_field = field;
                q->order_desc = desc;
                first = 0;
            }
        } while (lx.kind == T_COMMA);
    }

    for (int i = 0; i < 2; i++) {
        if (is_kw(&lx, "startposition")) {
            lex_next(&lx);
            if ((rc = take_number(&lx, &q->start, err, errsz)) != 0)
                goto Exit;
            if (q->start < 1)
                q->start = 1;
        } else if (is_kw(&lx, "maxresults")) {
            lex_next(&lx);
            if ((rc = take_number(&lx, &q->max, err, errsz)) != 0)
                goto Exit;
            if (q->max > 1000) {
                rc = validation_error(err, errsz, "value %ld is too large. Max allowed value is 1000", q->max);
                goto Exit;
            }
        }
    }
    if (lx.kind != T_END)
        goto Error;
    rc = 0;
    goto Exit;

Error:
    rc = parse_error(&lx, err, errsz);
Exit:
    free(lx.sval);
    if (rc != 0)
        sim_query_dispose(q);
    return rc;
}

/* ============================== execution ============================== */

static int64_t field_num(int field, const sim_entity_t *e)
{
    switch (field) {
    case SIM_F_ID:
        return e->id;
    case SIM_F_SYNCTOKEN:
        return e->sync_token;
    case SIM_F_CREATED:
        return e->create_ns;
    case SIM_F_UPDATED:
        return e->update_ns;
    case SIM_F_ACTIVE:
        return e->active;
    case SIM_F_TOTALAMT:
        return e->amount_cents;
    }
    return 0;
}

/* LIKE with % wildcards only (§3), case-insensitive. */
static int like_match(const char *pat, const char *s)
{
    if (*pat == '\0')
        return *s == '\0';
    if (*pat == '%') {
        for (;; s++) {
            if (like_match(pat + 1, s))
                return 1;
            if (*s == '\0')
                return 0;
        }
    }
    return *s && tolower((unsigned char)*pat) == tolower((unsigned char)*s) && like_match(pat + 1, s + 1);
}

static int cond_match(const sim_qcond_t *c, const sim_entity_t *e)
{
    int64_t v = field_num(c->field, e);
    if (c->field == SIM_F_UPDATED || c->field == SIM_F_CREATED) {
        /* MetaData is rendered (and compared by clients) to the second. */
        v -= v % 1000000000;
    }
    switch (c->op) {
    case SIM_Q_EQ:
        return c->vals[0].is_bool ? v == c->vals[0].b : v == c->vals[0].num;
    case SIM_Q_LT:
        return v < c->vals[0].num;
    case SIM_Q_GT:
        return v > c->vals[0].num;
    case SIM_Q_LE:
        return v <= c->vals[0].num;
    case SIM_Q_GE:
        return v >= c->vals[0].num;
    case SIM_Q_IN:
        for (size_t i = 0; i < c->nvals; i++)
            if (c->vals[i].is_bool ? v == c->vals[i].b : v == c->vals[i].num)
                return 1;
        return 0;
    case SIM_Q_LIKE: {
        char buf[32];
        snprintf(buf, sizeof(buf), "%lld", (long long)(c->field == SIM_F_TOTALAMT ? v / 100 : v));
        return like_match(c->vals[0].str ? c->vals[0].str : "", buf);
    }
    }
    return 0;
}

static int sort_field, sort_desc;

static int cmp_entities(const void *a, const void *b)
{
    const sim_entity_t *x = *(const sim_entity_t *const *)a, *y = *(const sim_entity_t *const *)b;
    if (sort_field >= 0) {
        int64_t vx = field_num(sort_field, x), vy = field_num(sort_field, y);
        if (vx != vy)
            return (vx < vy ? -1 : 1) * (sort_desc ? -1 : 1);
    }
    return x->id < y->id ? -1 : x->id > y->id ? 1 : 0;
}

void sim_query_run(sim_model_t *m, int realm, const sim_query_t *q, qbc_buf_t *out)
{
    sim_table_t *t = &m->realms[realm].t[q->etype];
    int mentions_active = 0;
    for (size_t i = 0; i < q->nconds; i++)
        if (q->conds[i].field == SIM_F_ACTIVE)
            mentions_active = 1;
    const sim_entity_t **hits = qbc_alloc((t->n + 1) * sizeof(*hits));
    size_t nh = 0;
    for (size_t k = 0; k < t->n; k++) {
        const sim_entity_t *e = &t->e[k];
        if (e->deleted)
            continue;
        if (sim_etype_is_namelist(q->etype) && !mentions_active && !e->active)
            continue;
        size_t i;
        for (i = 0; i < q->nconds; i++)
            if (!cond_match(&q->conds[i], e))
                break;
        if (i == q->nconds)
            hits[nh++] = e;
    }
    if (q->count) {
        (void)qbc_buf_printf(out, "{\"totalCount\":%zu}", nh);
        free(hits);
        return;
    }
    sort_field = q->order_field;
    sort_desc = q->order_desc;
    qsort(hits, nh, sizeof(*hits), cmp_entities);
    size_t first = (size_t)q->start - 1;
    if (first >= nh || q->max <= 0) {
        free(hits); /* past the end: an empty QueryResponse (§3) */
        (void)qbc_buf_append(out, "{}", 2);
        return;
    }
    size_t n = nh - first < (size_t)q->max ? nh - first : (size_t)q->max;
    (void)qbc_buf_printf(out, "{\"startPosition\":%ld,\"totalCount\":%zu,\"maxResults\":%zu,\"%s\":[", q->start, n, n,
                         sim_etype_names[q->etype]);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            (void)qbc_buf_append(out, ",", 1);
        sim_entity_write(q->etype, hits[first + i], out);
    }
    (void)qbc_buf_append(out, "]}", 2);
    free(hits);
}
