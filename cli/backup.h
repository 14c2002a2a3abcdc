/*
 * backup.h — `qbcdc backup DEST`: a consistent hot copy of the store (store/backup.c)
 * with the files that belong with it, checked by opening the copy.
 */
#ifndef QBC_CLI_BACKUP_H
#define QBC_CLI_BACKUP_H

/**
 * runs `qbcdc backup DEST [--data-dir DIR] [--master-key-file F]` (argv[1] is "backup").
 * Prints one JSON object on stdout describing the copy.
 * @return a process exit code: 0 done, 1 failed (reason on stderr), 2 usage error
 */
int qbc_cli_backup(int argc, char **argv);

#endif
