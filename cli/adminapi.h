/*
 * adminapi.h — `qbcdc cdc|backfill|jobs|cancel|realms|register|disconnect|dead-letters|retry`:
 * clients of the running service's admin API.
 */
#ifndef QBC_CLI_ADMINAPI_H
#define QBC_CLI_ADMINAPI_H

/** runs command cmd (argv[1]); returns the exit code (0 ok, 1 error answer or unreachable, 2 usage). */
int qbc_adminapi_main(const char *cmd, int argc, char **argv);

#endif
