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

const char *qbc_http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 302:
        return "Found";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 413:
        return "Payload Too Large";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}
