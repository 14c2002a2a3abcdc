/*
 * tap.h — the project's one test harness: a picotest-sized TAP producer.
 *
 *   ok(cond, "what it checks");          one assertion, one TAP line
 *   is_int(got, want, "name");           compares and prints both on failure
 *   is_str(got, want, "name");
 *   subtest("name", fn);                 groups assertions (as a comment header)
 *   return done_testing();               prints the plan; exit code != 0 on failure
 *
 * Binaries are run by `prove` (see .ci/run) and by meson test (protocol: tap).
 * Header-only on purpose: each test binary includes it once.
 */
#ifndef QBC_TAP_H
#define QBC_TAP_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int tap__n, tap__failed;

static inline int tap__ok(int cond, const char *file, int line, const char *name)
{
    tap__n++;
    printf("%sok %d - %s\n", cond ? "" : "not ", tap__n, name);
    if (!cond) {
        tap__failed++;
        printf("#   failed at %s:%d\n", file, line);
    }
    fflush(stdout);
    return cond;
}

#define ok(cond, name) tap__ok(!!(cond), __FILE__, __LINE__, (name))

#define is_int(got, want, name)                                                                                        \
    do {                                                                                                               \
        long long tap__g = (long long)(got), tap__w = (long long)(want);                                               \
        if (!tap__ok(tap__g == tap__w, __FILE__, __LINE__, (name)))                                                    \
            printf("#   got %lld, want %lld\n", tap__g, tap__w);                                                       \
    } while (0)

#define is_str(got, want, name)                                                                                        \
    do {                                                                                                               \
        const char *tap__g = (got), *tap__w = (want);                                                                  \
        int tap__c = (tap__g == NULL && tap__w == NULL) || (tap__g && tap__w && strcmp(tap__g, tap__w) == 0);          \
        if (!tap__ok(tap__c, __FILE__, __LINE__, (name)))                                                              \
            printf("#   got \"%s\", want \"%s\"\n", tap__g ? tap__g : "(null)", tap__w ? tap__w : "(null)");           \
    } while (0)

static inline void diag(const char *msg)
{
    printf("# %s\n", msg);
}

#define subtest(name, fn)                                                                                              \
    do {                                                                                                               \
        printf("# %s\n", (name));                                                                                      \
        fn();                                                                                                          \
    } while (0)

static inline int done_testing(void)
{
    printf("1..%d\n", tap__n);
    return tap__failed == 0 ? 0 : 1;
}

#endif
