/*
 * adminapi.c — operator commands that talk to a running `qbcdc serve` through its admin
 * API (bearer QBCDC_ADMIN_TOKEN, address QBCDC_LISTEN), so they act on the live service
 * rather than on the store: cdc, backfill, jobs, cancel.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include "common.h"
#include "config.h"
#include "adminapi.h"
#include "ingress.h"
#include "store.h"
#include "tls_pin.h"

/* "127.0.0.1:8080" / ":8080" / "[::1]:8080" -> a base URL (https when the service serves TLS) */
static void base_url(const char *listen, int tls, char *out, size_t size)
{
    const char *scheme = tls ? "https" : "http";
    if (listen[0] == ':')
        snprintf(out, size, "%s://127.0.0.1%s", scheme, listen);
    else if (strncmp(listen, "0.0.0.0:", 8) == 0)
        snprintf(out, size, "%s://127.0.0.1%s", scheme, listen + 7);
    else
        snprintf(out, size, "%s://%s", scheme, listen);
}

static int call(const qbc_config_t *cfg, const char *method, const char *path, const char *body)
{
    char url[512], auth[600];
    qbc_buf_t b = {0};
    long status = 0;

    if (cfg->admin_token == NULL) {
        fprintf(stderr, "qbcdc: set QBCDC_ADMIN_TOKEN (the running service's admin token)\n");
        return 2;
    }
    char pin[QBC_TLS_PIN_MAX], why[512];
    if (cfg->tls_cert != NULL && qbc_tls_pin_from_cert(cfg->tls_cert, pin, why, sizeof(why)) != 0) {
        fprintf(stderr, "qbcdc: QBCDC_TLS_CERT: %s\n", why);
        return 2;
    }
    base_url(cfg->listen, cfg->tls_cert != NULL, url, sizeof(url));
    snprintf(url + strlen(url), sizeof(url) - strlen(url), "%s", path);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", cfg->admin_token);
    CURL *e = curl_easy_init();
    if (e == NULL)
        return 1;
    struct curl_slist *h = curl_slist_append(NULL, auth);
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, qbc_buf_write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (body != NULL)
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    if (cfg->tls_cert != NULL) {
        /* our own service: its key is pinned, which a listen address like 127.0.0.1 cannot be */
        curl_easy_setopt(e, CURLOPT_PINNEDPUBLICKEY, pin);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    CURLcode rc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    if (rc != CURLE_OK) {
        fprintf(stderr, "qbcdc: cannot reach the service at %s: %s\n", url, curl_easy_strerror(rc));
        qbc_buf_free(&b, 0);
        return 1;
    }
    printf("%s\n", b.data != NULL ? b.data : "");
    qbc_buf_free(&b, 0);
    return status >= 200 && status < 300 ? 0 : 1;
}

static int usage(const char *cmd)
{
    printf("Usage:\n"
           "  qbcdc cdc REALM                                   run a CDC sweep of REALM now\n"
           "  qbcdc backfill REALM [--entities A,B] [--since T] start a backfill job (T: ISO-8601 with offset)\n"
           "  qbcdc jobs [ID]                                   list backfill jobs, or show one\n"
           "  qbcdc cancel ID                                   cancel a backfill job\n"
           "  qbcdc realms                                      list realms: status, pending work, API use\n"
           "  qbcdc budget                                      the month's metered-call budget: used, forecast\n"
           "  qbcdc cluster                                     cluster mode: the live nodes, each partition's owner\n"
           "  qbcdc register REALM                              register tokens: the refresh token is read\n"
           "                                                    from standard input (never a flag: ps shows flags)\n"
           "  qbcdc disconnect REALM                            revoke at Intuit, erase the tokens here\n"
           "  qbcdc dead-letters                                list dead letters\n"
           "  qbcdc retry ID                                    put dead letter ID back into pending work (cluster\n"
           "                                                    mode: its cluster id, node.store.n; 202)\n"
           "  qbcdc subscriptions [list]                        push subscriptions with their cursor, lag, state\n"
           "  qbcdc subscriptions show ID\n"
           "  qbcdc subscriptions create --url URL [--realms A,B] [--entities A,B] [--ops A,B]\n"
           "                     [--batch-max N] [--start-after SEQ|head|TIME] [--secret-stdin]\n"
           "                                                    the answer holds the secret (shown once)\n"
           "  qbcdc subscriptions update ID [the flags above] [--rotate-secret] [--enable]\n"
           "  qbcdc subscriptions pause|resume|delete ID\n"
           "  qbcdc subscriptions redeliver ID --from SEQ [--to SEQ]   deliver again from SEQ (up to SEQ)\n\n"
           "They call the running service's admin API at QBCDC_LISTEN with QBCDC_ADMIN_TOKEN\n"
           "and print its JSON answer; exit 0 on success, 1 on an error answer, 2 on bad usage.\n");
    qbc_config_print_help((const char *const[]){"listen", "admin-token", "tls-cert", NULL});
    (void)cmd;
    return 0;
}

/* a dead letter's cluster id, <node>.<store>.<n> (cluster mode) */
static int valid_dead_id(const char *s)
{
    if (s == NULL || *s == '\0' || strlen(s) > 95 || s[0] == '.')
        return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '-' ||
              *s == '_' || *s == '.'))
            return 0;
    return 1;
}

static int valid_word(const char *s)
{
    if (s == NULL || *s == '\0' || strlen(s) > 63)
        return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '-' ||
              *s == '_'))
            return 0;
    return 1;
}

/* PUT /admin/realms/{realm}/tokens with the refresh token from the first line of stdin */
static int register_realm(const qbc_config_t *cfg, const char *realm)
{
    char token[QBC_TOKEN_MAX], path[128];
    if (fgets(token, sizeof(token), stdin) == NULL) {
        fprintf(stderr, "qbcdc: register reads the refresh token from standard input; got nothing\n");
        return 2;
    }
    token[strcspn(token, "\r\n")] = '\0';
    if (token[0] == '\0') {
        fprintf(stderr, "qbcdc: the refresh token read from standard input is empty\n");
        return 2;
    }
    json_t *o = json_pack("{s:s}", "refresh_token", token);
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    OPENSSL_cleanse(token, sizeof(token));
    snprintf(path, sizeof(path), "/admin/realms/%s/tokens", realm);
    int code = call(cfg, "PUT", path, body);
    OPENSSL_cleanse(body, strlen(body));
    free(body);
    return code;
}

/* a comma-separated flag value as a JSON array of strings ("" : null) */
static json_t *list_json(const char *v)
{
    if (v[0] == '\0')
        return json_null();
    json_t *a = json_array();
    const char *e;
    size_t len;
    for (const char *p = v; (p = qbc_list_next(p, &e, &len)) != NULL;)
        if (len > 0)
            json_array_append_new(a, json_stringn(e, len));
    return a;
}

/* the admin commands' settings: the flags and variables that say where the service is; says why not */
static int load_config(qbc_config_t *cfg, int n, char **args)
{
    char err[256];
    if (qbc_config_load(cfg, n, args, 2, (const char *const[]){"listen", "admin-token", "tls-cert", NULL}, err,
                        sizeof(err)) != 0) {
        fprintf(stderr, "qbcdc: %s\n", err);
        return -1;
    }
    return 0;
}

/* qbcdc subscriptions ...: /admin/subscriptions */
static int subscriptions(int argc, char **argv)
{
    const char *verb = argc > 2 && argv[2][0] != '-' ? argv[2] : "list", *id = NULL;
    char *rest[64];
    int nrest = 0, first = argc > 2 && argv[2][0] != '-' ? 3 : 2;
    json_t *body = json_object();
    qbc_config_t cfg;
    char path[160];
    int code = 2;

    rest[nrest++] = argv[0];
    rest[nrest++] = argv[1];
    static const struct {
        const char *flag, *field;
        char kind; /* s string, l list, n number, a start_after, b true, f from */
    } flags[] = {{"--url", "url", 's'},
                 {"--realms", "realms", 'l'},
                 {"--entities", "entities", 'l'},
                 {"--ops", "ops", 'l'},
                 {"--batch-max", "batch_max", 'n'},
                 {"--start-after", "start_after", 'a'},
                 {"--rotate-secret", "rotate_secret", 'b'},
                 {"--enable", "enabled", 'b'},
                 {"--from", "from", 'n'},
                 {"--to", "to", 'n'}};
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            json_decref(body);
            return usage("subscriptions");
        }
        size_t k = 0, nflags = sizeof(flags) / sizeof(flags[0]);
        while (k < nflags && strcmp(a, flags[k].flag) != 0)
            k++;
        if (k < nflags) {
            if (flags[k].kind == 'b') {
                json_object_set_new(body, flags[k].field, json_true());
                continue;
            }
            if (i + 1 >= argc) {
                fprintf(stderr, "qbcdc: %s needs a value\n", a);
                goto Exit;
            }
            const char *v = argv[++i];
            char *end;
            long long n = strtoll(v, &end, 10);
            int number = *v != '\0' && *end == '\0';
            if ((flags[k].kind == 'n' && !number) || (flags[k].kind == 'n' && n < 0)) {
                fprintf(stderr, "qbcdc: %s needs a number\n", a);
                goto Exit;
            }
            json_object_set_new(body, flags[k].field,
                                flags[k].kind == 'l'             ? list_json(v)
                                : flags[k].kind == 'n' || number ? json_integer(n)
                                                                 : json_string(v));
        } else if (strcmp(a, "--secret-stdin") == 0) {
            char secret[512];
            if (fgets(secret, sizeof(secret), stdin) == NULL) {
                fprintf(stderr, "qbcdc: --secret-stdin read nothing from standard input\n");
                goto Exit;
            }
            secret[strcspn(secret, "\r\n")] = '\0';
            json_object_set_new(body, "secret", json_string(secret));
            OPENSSL_cleanse(secret, sizeof(secret));
        } else if (a[0] != '-' && id == NULL) {
            id = a;
        } else if (nrest < 62) {
            rest[nrest++] = argv[i];
            if (strchr(a, '=') == NULL && i + 1 < argc)
                rest[nrest++] = argv[++i];
        }
    }
    if (load_config(&cfg, nrest, rest) != 0)
        goto Exit;
    int needs_id = strcmp(verb, "list") != 0 && strcmp(verb, "create") != 0;
    if (needs_id != (id != NULL) || (id != NULL && !valid_word(id))) {
        fprintf(stderr, "qbcdc: subscriptions %s %s (see qbcdc subscriptions --help)\n", verb,
                needs_id ? "needs an id" : "takes no id");
    } else if (json_object_size(body) > 0 && strcmp(verb, "create") != 0 && strcmp(verb, "update") != 0 &&
               strcmp(verb, "redeliver") != 0) {
        fprintf(stderr, "qbcdc: subscriptions %s takes no flags\n", verb);
    } else if (strcmp(verb, "list") == 0) {
        code = call(&cfg, "GET", "/admin/subscriptions", NULL);
    } else {
        const char *method = NULL, *suffix = "";
        if (strcmp(verb, "show") == 0)
            method = "GET";
        else if (strcmp(verb, "create") == 0)
            method = "POST";
        else if (strcmp(verb, "update") == 0)
            method = "PATCH";
        else if (strcmp(verb, "delete") == 0)
            method = "DELETE";
        else if (strcmp(verb, "pause") == 0 || strcmp(verb, "resume") == 0 || strcmp(verb, "redeliver") == 0)
            method = "POST", suffix = verb;
        if (method == NULL) {
            fprintf(stderr, "qbcdc: unknown subscriptions command '%s' (see qbcdc subscriptions --help)\n", verb);
        } else {
            snprintf(path, sizeof(path), "/admin/subscriptions%s%s%s%s", id ? "/" : "", id ? id : "",
                     suffix[0] ? "/" : "", suffix);
            char *text = json_object_size(body) > 0 || strcmp(method, "POST") == 0 || strcmp(method, "PATCH") == 0
                             ? json_dumps(body, JSON_COMPACT)
                             : NULL;
            code = call(&cfg, method, path, text);
            if (text != NULL) {
                OPENSSL_cleanse(text, strlen(text));
                free(text);
            }
        }
    }
    qbc_config_free(&cfg);
Exit:
    json_decref(body);
    return code;
}

int qbc_adminapi_main(const char *cmd, int argc, char **argv)
{
    if (strcmp(cmd, "subscriptions") == 0)
        return subscriptions(argc, argv);
    const char *pos = NULL, *entities = NULL, *since = NULL;
    char *rest[64];
    int nrest = 0;
    qbc_config_t cfg;

    rest[nrest++] = argv[0];
    rest[nrest++] = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return usage(cmd);
        if (strcmp(cmd, "backfill") == 0 && (strcmp(a, "--entities") == 0 || strcmp(a, "--since") == 0)) {
            if (i + 1 >= argc) {
                fprintf(stderr, "qbcdc: %s needs a value\n", a);
                return 2;
            }
            *(strcmp(a, "--since") == 0 ? &since : &entities) = argv[++i];
        } else if (a[0] != '-' && pos == NULL) {
            pos = a;
        } else if (nrest < 62) {
            rest[nrest++] = argv[i];
            if (strchr(a, '=') == NULL && i + 1 < argc)
                rest[nrest++] = argv[++i];
        }
    }
    if (load_config(&cfg, nrest, rest) != 0)
        return 2;
    char path[256];
    int code = 2;
    if (strcmp(cmd, "cluster") == 0) {
        code = pos != NULL ? (fprintf(stderr, "qbcdc: cluster takes no argument\n"), 2)
                           : call(&cfg, "GET", "/admin/cluster", NULL);
    } else if (strcmp(cmd, "budget") == 0) {
        code = pos != NULL ? (fprintf(stderr, "qbcdc: budget takes no argument\n"), 2)
                           : call(&cfg, "GET", "/admin/budget", NULL);
    } else if (strcmp(cmd, "realms") == 0 || strcmp(cmd, "dead-letters") == 0) {
        code = call(&cfg, "GET", strcmp(cmd, "realms") == 0 ? "/admin/realms" : "/admin/dead-letters", NULL);
    } else if (strcmp(cmd, "jobs") == 0) {
        if (pos != NULL && !valid_word(pos))
            fprintf(stderr, "qbcdc: bad job id '%s'\n", pos);
        else {
            snprintf(path, sizeof(path), pos ? "/admin/jobs/%s" : "/admin/jobs", pos);
            code = call(&cfg, "GET", path, NULL);
        }
    } else if (!valid_word(pos) && !(strcmp(cmd, "retry") == 0 && valid_dead_id(pos))) {
        fprintf(stderr, "qbcdc: %s needs a %s (see qbcdc %s --help)\n", cmd,
                strcmp(cmd, "cancel") == 0 || strcmp(cmd, "retry") == 0 ? "id" : "realm", cmd);
    } else if (strcmp(cmd, "disconnect") == 0) {
        snprintf(path, sizeof(path), "/admin/realms/%s", pos);
        code = call(&cfg, "DELETE", path, NULL);
    } else if (strcmp(cmd, "retry") == 0) {
        snprintf(path, sizeof(path), "/admin/dead-letters/%s/retry", pos);
        code = call(&cfg, "POST", path, "");
    } else if (strcmp(cmd, "register") == 0) {
        code = register_realm(&cfg, pos);
    } else if (strcmp(cmd, "cdc") == 0) {
        snprintf(path, sizeof(path), "/admin/realms/%s/cdc", pos);
        code = call(&cfg, "POST", path, "");
    } else if (strcmp(cmd, "cancel") == 0) {
        snprintf(path, sizeof(path), "/admin/jobs/%s", pos);
        code = call(&cfg, "DELETE", path, NULL);
    } else { /* backfill */
        char body[2048] = "{", *p = body + 1;
        size_t left = sizeof(body) - 1;
        if (entities != NULL) {
            /* checked here too, so a typo is a usage error (exit 2) before anything is asked */
            char canon[1024], why[1200];
            if (qbc_entity_list_check(entities, canon, sizeof(canon), why, sizeof(why)) != 0) {
                fprintf(stderr, "qbcdc: bad --entities: %s\n", why);
                qbc_config_free(&cfg);
                return 2;
            }
            int n = snprintf(p, left, "\"entities\":[");
            p += n, left -= (size_t)n;
            const char *e;
            size_t len;
            int first = 1;
            for (const char *c = canon; (c = qbc_list_next(c, &e, &len)) != NULL && left > 64;) {
                n = snprintf(p, left, "%s\"%.*s\"", first ? "" : ",", (int)len, e);
                p += n, left -= (size_t)n;
                first = 0;
            }
            n = snprintf(p, left, "]");
            p += n, left -= (size_t)n;
        }
        if (since != NULL) {
            for (const char *c = since; *c; c++)
                if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20) {
                    fprintf(stderr, "qbcdc: bad --since '%s'\n", since);
                    qbc_config_free(&cfg);
                    return 2;
                }
            snprintf(p, left, "%s\"since\":\"%s\"", entities ? "," : "", since);
        }
        strncat(body, "}", sizeof(body) - strlen(body) - 1);
        snprintf(path, sizeof(path), "/admin/realms/%s/backfill", pos);
        code = call(&cfg, "POST", path, body);
    }
    qbc_config_free(&cfg);
    return code;
}
