/*
 * backup.c — `qbcdc backup DEST`.
 *
 * The store module makes the copy (store/backup.c: journal first, then a compacted
 * LMDB snapshot). This command adds what belongs with it and is not LMDB's: the master
 * key when it lives in the data directory (a key kept elsewhere on purpose stays there,
 * and the output says to back it up separately), and the bundled simulator's state in
 * dev mode. Then it opens the copy as any qbcdc command would, which replays the copy's
 * journal and proves it readable, and prints what it holds.
 */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "backup.h"
#include "common.h"
#include "config.h"
#include "store.h"

static const char *const allowed[] = {"data-dir", "master-key-file", NULL};

static void help(void)
{
    printf("Usage: qbcdc backup DEST [--data-dir DIR] [--master-key-file FILE]\n\n"
           "Copies the store in DIR into DEST, a new or empty directory, while the service runs\n"
           "(or while none does). The copy holds every webhook acked before the backup began and\n"
           "the store as it was at one moment: data.mdb (compacted), the journal of acked webhooks\n"
           "not yet applied to it, master.key when it lives in DIR, and qbosim.state (dev mode).\n"
           "Files are written 0600 and synced; DEST is created 0700.\n\n"
           "Restore: stop the service, move DIR aside, copy DEST's files into DIR (or point\n"
           "QBCDC_DATA_DIR at DEST), start. A master key kept outside DIR must be restored too:\n"
           "without it the stored OAuth tokens cannot be read and every company must reconnect.\n\n"
           "Prints one JSON object: dest, data_bytes, journal_bytes, master_key (copied |\n"
           "not_in_data_dir | none), inbox_records, last_inbox_seq, feed_records, last_feed_seq,\n"
           "realms, seconds.\n");
    qbc_config_print_help(allowed);
}

/* 1 if file's directory is dir (both resolved), 0 otherwise */
static int lives_in(const char *file, const char *dir)
{
    char f[PATH_MAX], d[PATH_MAX];
    if (realpath(file, f) == NULL || realpath(dir, d) == NULL)
        return 0;
    char *slash = strrchr(f, '/');
    if (slash == NULL)
        return 0;
    *slash = '\0';
    return strcmp(f[0] != '\0' ? f : "/", d) == 0;
}

int qbc_cli_backup(int argc, char **argv)
{
    qbc_config_t cfg;
    char err[512], key[4096], sim_state[4096];
    const char *dest = NULL;
    char *rest[64];
    int nrest = 0, rc;

    rest[nrest++] = argv[0];
    rest[nrest++] = argv[1];
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help();
            return 0;
        }
        if (argv[i][0] != '-' && dest == NULL) {
            dest = argv[i];
        } else if (nrest < 62) {
            rest[nrest++] = argv[i];
            /* every flag here takes a value: --flag VALUE (or --flag=VALUE) */
            if (strncmp(argv[i], "--", 2) == 0 && strchr(argv[i], '=') == NULL && i + 1 < argc)
                rest[nrest++] = argv[++i];
        } else {
            fprintf(stderr, "qbcdc: too many arguments\n");
            return 2;
        }
    }
    if (dest == NULL) {
        fprintf(stderr, "qbcdc: backup needs a destination directory: qbcdc backup DEST\n");
        return 2;
    }
    if (qbc_config_load(&cfg, nrest, rest, 2, allowed, err, sizeof(err)) != 0) {
        fprintf(stderr, "qbcdc: %s\n", err);
        return 2;
    }

    snprintf(key, sizeof(key), "%s", cfg.master_key_file != NULL ? cfg.master_key_file : "");
    if (key[0] == '\0')
        snprintf(key, sizeof(key), "%s/master.key", cfg.data_dir);
    const char *key_state = "none";
    const char *extra[3] = {NULL, NULL, NULL};
    int nextra = 0, key_index = -1;
    FILE *probe = fopen(key, "rb");
    if (probe != NULL) {
        fclose(probe);
        if (lives_in(key, cfg.data_dir)) {
            key_index = nextra;
            extra[nextra++] = key;
        } else {
            key_state = "not_in_data_dir";
        }
    }
    snprintf(sim_state, sizeof(sim_state), "%s/qbosim.state", cfg.data_dir);
    extra[nextra++] = sim_state;

    int64_t t0 = qbc_mono_ns();
    qbc_backup_report_t rep;
    if ((rc = qbc_store_backup(cfg.data_dir, dest, extra, &rep, err, sizeof(err))) != 0) {
        fprintf(stderr, "qbcdc: backup failed: %s\n", err);
        qbc_config_free(&cfg);
        return 1;
    }
    if (key_index >= 0 && (rep.extra_copied & (1u << key_index)) != 0)
        key_state = "copied";

    /* open the copy as every qbcdc command does: replays its journal, proves it readable */
    qbc_store_t *copy;
    qbc_store_stats_t st;
    if ((rc = qbc_store_open_readonly(dest, &copy)) != 0 || (rc = qbc_store_stats(copy, &st)) != 0) {
        fprintf(stderr, "qbcdc: the copy in %s cannot be read back: %s\n", dest, qbc_strerror(rc));
        qbc_config_free(&cfg);
        return 1;
    }
    qbc_store_close(copy);
    json_t *out =
        json_pack("{s:s, s:I, s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:f}", "dest", dest, "data_bytes",
                  (json_int_t)rep.data_bytes, "journal_bytes", (json_int_t)rep.journal_bytes, "master_key", key_state,
                  "inbox_records", (json_int_t)st.inbox_depth, "last_inbox_seq", (json_int_t)st.last_inbox_seq,
                  "feed_records", (json_int_t)st.feed_records, "last_feed_seq", (json_int_t)st.last_feed_seq, "realms",
                  (json_int_t)st.realms, "seconds", (double)(qbc_mono_ns() - t0) / 1e9);
    char *text = out != NULL ? json_dumps(out, JSON_PRESERVE_ORDER | JSON_COMPACT | JSON_REAL_PRECISION(4)) : NULL;
    printf("%s\n", text != NULL ? text : "{}");
    free(text);
    json_decref(out);
    if (strcmp(key_state, "not_in_data_dir") == 0)
        fprintf(stderr, "qbcdc: the master key %s lives outside %s and was not copied; back it up separately\n", key,
                cfg.data_dir);
    qbc_config_free(&cfg);
    return 0;
}
