/*
 * fuzz_datafile.c — libFuzzer target for store/datafile.c, which reads data.mdb's meta pages
 * and LMDB's free list with pread before LMDB maps the file: whatever a bad copy, a full disk
 * or a damaged disk left there.
 *
 * Input: the file's bytes (written to a memfd). Invariants: nothing is read outside what the
 * file holds (ASan), no page is read twice past the walk's bound (no loop), nothing leaks
 * (LeakSanitizer); a file that passes either holds no meta (need 0) or is at least as long as
 * its last commit, or else has a free list naming every missing page; and the answer is
 * the same on a second look (the check reads, never writes).
 */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include "store_internal.h"

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond))                                                                                                   \
            qbc_fatal("fuzz_datafile: invariant broken: %s", #cond);                                                   \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    if (fd < 0 && (fd = memfd_create("data.mdb", MFD_CLOEXEC)) < 0)
        return 0;
    if (ftruncate(fd, 0) != 0 || (size > 0 && pwrite(fd, data, size, 0) != (ssize_t)size))
        return 0;
    uint64_t have = 0, need = 0, have2 = 0, need2 = 0;
    int rc = qbc_store__check_data_fd(fd, &have, &need);
    CHECK(rc == 0 || rc == QBC_ESTORE);
    CHECK(have == 0 || have == size);
    CHECK(rc == 0 || (need > have && need > 0)); /* refused only when shorter than its commit */
    CHECK(qbc_store__check_data_fd(fd, &have2, &need2) == rc && have2 == have && need2 == need);
    return 0;
}
