/*
 * harden.c — no core dumps unless asked for (see harden.h).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include "common.h"
#include "harden.h"

void qbc_harden_process(void)
{
    const char *allow = getenv("QBCDC_ALLOW_CORE_DUMPS");
    if (allow != NULL && strcmp(allow, "1") == 0) {
        qbc_log(QBC_LOG_WARN, "main",
                "QBCDC_ALLOW_CORE_DUMPS=1: a core dump may hold OAuth and bearer tokens (the master key is left out)");
        return;
    }
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}
