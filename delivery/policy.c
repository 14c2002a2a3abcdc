/*
 * policy.c — which receivers deliveries may go to. By default only public addresses: a
 * subscription must not make qbcdc call into its own host or private network (SSRF). The
 * worker checks again at connect time (CURLOPT_OPENSOCKETFUNCTION), so a name that
 * resolves elsewhere later is refused then too.
 */
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include "delivery.h"

static int v4_private(uint32_t a) /* host byte order */
{
    return (a >> 24) == 0 ||              /* 0/8 "this network" */
           (a >> 24) == 10 ||             /* 10/8 */
           (a >> 24) == 127 ||            /* loopback */
           (a >> 16) == 0xA9FE ||         /* 169.254/16 link-local */
           (a >> 20) == 0xAC1 ||          /* 172.16/12 */
           (a >> 16) == 0xC0A8 ||         /* 192.168/16 */
           (a >> 22) == (100 << 2 | 1) || /* 100.64/10 CGNAT */
           (a >> 8) == 0xC00000 ||        /* 192.0.0/24 IETF protocol assignments */
           (a >> 17) == (198 << 7 | 9) || /* 198.18/15 benchmarking */
           (a >> 28) >= 0xE;              /* multicast 224/4, reserved 240/4, broadcast */
}

int qbc_delivery_addr_private(const struct sockaddr *addr)
{
    if (addr->sa_family == AF_INET)
        return v4_private(ntohl(((const struct sockaddr_in *)addr)->sin_addr.s_addr));
    if (addr->sa_family != AF_INET6)
        return 1; /* unix sockets and the like: never a receiver */
    const unsigned char *b = ((const struct sockaddr_in6 *)addr)->sin6_addr.s6_addr;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char zero[15] = {0};
    if (memcmp(b, mapped, 12) == 0)
        return v4_private((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15]);
    if (memcmp(b, zero, 15) == 0 && (b[15] == 0 || b[15] == 1)) /* :: and ::1 */
        return 1;
    return (b[0] & 0xfe) == 0xfc ||                   /* fc00::/7 unique local */
           (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) || /* fe80::/10 link-local */
           b[0] == 0xff;                              /* multicast */
}

int qbc_delivery_url_check(const char *url, int allow_private, char *why, size_t whysz)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *user = NULL;
    int rc = QBC_EINVAL;

    snprintf(why, whysz, "the url is not an absolute http(s) URL");
    if (u == NULL || url == NULL || strlen(url) > 2048 ||
        curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
        goto Exit;
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        snprintf(why, whysz, "the url's scheme must be http or https, not %.20s", scheme);
        goto Exit;
    }
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
        snprintf(why, whysz, "the url must not carry credentials (use the signature to authenticate qbcdc)");
        goto Exit;
    }
    if (allow_private) {
        rc = 0;
        goto Exit;
    }
    /* a bracketed IPv6 literal comes back with its brackets */
    char name[256];
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']')
        snprintf(name, sizeof(name), "%.*s", (int)(hl - 2), host + 1);
    else
        snprintf(name, sizeof(name), "%s", host);
    struct addrinfo hints, *res = NULL, *ai;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(name, NULL, &hints, &res) != 0) {
        snprintf(why, whysz, "the url's host %.100s does not resolve", name);
        rc = QBC_ENOTFOUND;
        goto Exit;
    }
    rc = 0;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        if (qbc_delivery_addr_private(ai->ai_addr)) {
            char addr[INET6_ADDRSTRLEN] = "?";
            if (ai->ai_family == AF_INET)
                inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, addr, sizeof(addr));
            else if (ai->ai_family == AF_INET6)
                inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, addr, sizeof(addr));
            snprintf(why, whysz,
                     "the url's host %.100s resolves to %s, a loopback, link-local or private address "
                     "(allowed only with QBCDC_DELIVERY_ALLOW_PRIVATE=1)",
                     name, addr);
            rc = QBC_EINVAL;
            break;
        }
    }
    freeaddrinfo(res);
Exit:
    if (rc == 0)
        why[0] = '\0';
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_url_cleanup(u);
    return rc;
}
