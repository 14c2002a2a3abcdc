/*
 * state.c — qbosim's model kept across restarts (--state FILE), so the bundled simulator
 * of `qbcdc serve` is the same company data on every start: its SyncTokens go on from
 * where they were, and qbcdc's store never holds versions newer than the simulator's.
 *
 * The file is this build's memory layout (a header with sizes guards against another
 * build), written to FILE.tmp and renamed, so a crash leaves the previous one whole.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common.h"
#include "sim.h"

#define STATE_MAGIC "QBOSIM-STATE-1\n"

typedef struct {
    char magic[16];
    uint32_t entity_size, ntypes;
    uint64_t nrealms, rng, last_change_ns;
} state_head_t;

int sim_model_save(const sim_model_t *m, const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (f == NULL)
        return -errno;
    state_head_t h;
    memset(&h, 0, sizeof(h));
    memcpy(h.magic, STATE_MAGIC, sizeof(STATE_MAGIC) - 1);
    h.entity_size = sizeof(sim_entity_t);
    h.ntypes = SIM_NTYPES;
    h.nrealms = m->nrealms;
    h.rng = m->rng.s;
    h.last_change_ns = (uint64_t)m->last_change_ns;
    int ok = fwrite(&h, sizeof(h), 1, f) == 1;
    for (size_t r = 0; ok && r < m->nrealms; r++) {
        const sim_realm_t *rl = &m->realms[r];
        ok = fwrite(rl->id, sizeof(rl->id), 1, f) == 1;
        for (int t = 0; ok && t < SIM_NTYPES; t++) {
            uint64_t n = rl->t[t].n;
            ok = fwrite(&n, sizeof(n), 1, f) == 1 && (n == 0 || fwrite(rl->t[t].e, sizeof(sim_entity_t), n, f) == n);
        }
    }
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0 || !ok) {
        unlink(tmp);
        return QBC_ESTORE;
    }
    return rename(tmp, path) == 0 ? 0 : -errno;
}

int sim_model_load(sim_model_t *m, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return errno == ENOENT ? QBC_ENOTFOUND : -errno;
    state_head_t h;
    int rc = QBC_EMALFORMED;
    if (fread(&h, sizeof(h), 1, f) != 1 || memcmp(h.magic, STATE_MAGIC, sizeof(STATE_MAGIC) - 1) != 0 ||
        h.entity_size != sizeof(sim_entity_t) || h.ntypes != SIM_NTYPES || h.nrealms != m->nrealms)
        goto out;
    sim_realm_t *realms = qbc_calloc(m->nrealms, sizeof(*realms));
    size_t live = 0;
    for (size_t r = 0; r < m->nrealms; r++) {
        if (fread(realms[r].id, sizeof(realms[r].id), 1, f) != 1)
            goto bad;
        for (int t = 0; t < SIM_NTYPES; t++) {
            uint64_t n;
            if (fread(&n, sizeof(n), 1, f) != 1 || n > 100000000)
                goto bad;
            sim_table_t *tb = &realms[r].t[t];
            tb->e = qbc_calloc(n > 0 ? n : 1, sizeof(sim_entity_t));
            tb->n = tb->cap = n;
            if (n > 0 && fread(tb->e, sizeof(sim_entity_t), n, f) != n)
                goto bad;
            for (size_t i = 0; i < n; i++)
                live += !tb->e[i].deleted;
        }
        realms[r].live_count = live;
        live = 0;
    }
    /* whole and consistent: it replaces the seeded model */
    for (size_t r = 0; r < m->nrealms; r++)
        for (int t = 0; t < SIM_NTYPES; t++)
            free(m->realms[r].t[t].e);
    free(m->realms);
    m->realms = realms;
    m->rng.s = h.rng;
    m->last_change_ns = (int64_t)h.last_change_ns;
    rc = 0;
    goto out;
bad:
    for (size_t r = 0; r < m->nrealms; r++)
        for (int t = 0; t < SIM_NTYPES; t++)
            free(realms[r].t[t].e);
    free(realms);
out:
    fclose(f);
    return rc;
}
