/*
 * test_policy.c — delivery/policy.c: which addresses are private, and which URLs are
 * refused, and why.
 */
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include "delivery.h"
#include "../../tap.h"

static int v4(const char *a)
{
    struct sockaddr_in s;
    memset(&s, 0, sizeof(s));
    s.sin_family = AF_INET;
    inet_pton(AF_INET, a, &s.sin_addr);
    return qbc_delivery_addr_private((struct sockaddr *)&s);
}

static int v6(const char *a)
{
    struct sockaddr_in6 s;
    memset(&s, 0, sizeof(s));
    s.sin6_family = AF_INET6;
    inet_pton(AF_INET6, a, &s.sin6_addr);
    return qbc_delivery_addr_private((struct sockaddr *)&s);
}

int main(void)
{
    const char *priv4[] = {"127.0.0.1",       "127.1.2.3", "10.0.0.1",   "172.16.0.1", "172.31.255.255",  "192.168.1.1",
                           "169.254.169.254", "0.0.0.0",   "100.64.0.1", "224.0.0.1",  "255.255.255.255", NULL};
    const char *pub4[] = {"8.8.8.8", "172.32.0.1", "172.15.255.255", "192.169.0.1", "100.128.0.1", "1.1.1.1", NULL};
    char name[80];
    for (int i = 0; priv4[i]; i++) {
        snprintf(name, sizeof(name), "%s is private", priv4[i]);
        ok(v4(priv4[i]), name);
    }
    for (int i = 0; pub4[i]; i++) {
        snprintf(name, sizeof(name), "%s is public", pub4[i]);
        ok(!v4(pub4[i]), name);
    }
    const char *priv6[] = {
        "::1", "::", "fe80::1", "fd00::1", "fc00::2", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.1.2.3", NULL};
    const char *pub6[] = {"2001:4860:4860::8888", "2606:4700::1111", "::ffff:8.8.8.8", NULL};
    for (int i = 0; priv6[i]; i++) {
        snprintf(name, sizeof(name), "%s is private", priv6[i]);
        ok(v6(priv6[i]), name);
    }
    for (int i = 0; pub6[i]; i++) {
        snprintf(name, sizeof(name), "%s is public", pub6[i]);
        ok(!v6(pub6[i]), name);
    }

    char why[300];
    is_int(qbc_delivery_url_check("http://127.0.0.1:9/hook", 0, why, sizeof(why)), QBC_EINVAL, "loopback refused");
    ok(strstr(why, "127.0.0.1") && strstr(why, "QBCDC_DELIVERY_ALLOW_PRIVATE"), "saying why and how to allow it");
    is_int(qbc_delivery_url_check("http://localhost/hook", 0, why, sizeof(why)), QBC_EINVAL, "localhost refused");
    is_int(qbc_delivery_url_check("http://[::1]:80/", 0, why, sizeof(why)), QBC_EINVAL, "[::1] refused");
    is_int(qbc_delivery_url_check("http://169.254.169.254/latest", 0, why, sizeof(why)), QBC_EINVAL,
           "the metadata address refused");
    is_int(qbc_delivery_url_check("http://127.0.0.1:9/hook", 1, why, sizeof(why)), 0, "loopback allowed when asked");
    is_int(qbc_delivery_url_check("https://8.8.8.8/hook", 0, why, sizeof(why)), 0, "a public address is fine");
    is_int(qbc_delivery_url_check("ftp://8.8.8.8/", 1, why, sizeof(why)), QBC_EINVAL, "ftp refused");
    ok(strstr(why, "http or https") != NULL, "saying the schemes");
    is_int(qbc_delivery_url_check("not a url", 1, why, sizeof(why)), QBC_EINVAL, "not a URL");
    is_int(qbc_delivery_url_check("http://u:p@8.8.8.8/", 1, why, sizeof(why)), QBC_EINVAL, "credentials refused");
    is_int(qbc_delivery_url_check("http://no-such-host.invalid/", 0, why, sizeof(why)), QBC_ENOTFOUND,
           "a name that does not resolve");
    return done_testing();
}
