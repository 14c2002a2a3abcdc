/*
 * fixture.h — reads a sample body from tests/unit/ingress/fixtures/ (QBC_FIXTURES_DIR,
 * set by meson). Shared by the payload tests.
 */
#ifndef QBC_TEST_FIXTURE_H
#define QBC_TEST_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

/** the whole file, NUL-terminated (malloc'd), and its length; NULL (and a TAP comment) if unreadable */
static char *slurp(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", QBC_FIXTURES_DIR, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        printf("# cannot open %s\n", path);
        *len = 0;
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    *len = fread(buf, 1, (size_t)n, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

#endif
