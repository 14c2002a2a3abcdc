/*
 * error.c — one table of text for every code the project returns (see common.h).
 */
#include <string.h>
#include "common.h"

const char *qbc_strerror(int rc)
{
    switch (rc) {
    case 0:
        return "success";
    case QBC_EINVAL:
        return "invalid argument";
    case QBC_EMALFORMED:
        return "malformed input";
    case QBC_EAUTH:
        return "authentication failed";
    case QBC_ETOOBIG:
        return "input too large";
    case QBC_EFULL:
        return "store is full and cannot grow";
    case QBC_ESTORE:
        return "store error";
    case QBC_ECLOSED:
        return "shutting down";
    case QBC_ENOTFOUND:
        return "not found";
    case QBC_EDUP:
        return "duplicate";
    case QBC_EGONE:
        return "removed by retention";
    case QBC_ECRYPTO:
        return "encryption failed";
    default:
        break;
    }
    if (rc < 0 && rc > QBC_ERR_BASE)
        return strerror(-rc); /* glibc's strerror is thread-safe for known values */
    return "unknown error";
}
