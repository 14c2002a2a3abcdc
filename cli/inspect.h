/*
 * inspect.h — read-only store views behind `qbcdc inbox|pending|stats`.
 */
#ifndef QBC_CLI_INSPECT_H
#define QBC_CLI_INSPECT_H

/**
 * prints what ("inbox", "pending" or "stats") of the store in data_dir as JSON lines.
 * @return a process exit code (0 ok, 1 failure, message on stderr)
 */
int qbc_inspect(const char *what, const char *data_dir, const char *realm, long after, long limit, int bodies);

#endif
