/*
 * harden.h — what the qbcdc process does to its own safety before anything else.
 */
#ifndef QBC_HARDEN_H
#define QBC_HARDEN_H

/**
 * keeps secrets (OAuth and bearer tokens, the master key) out of core dumps: the core size
 * limit becomes 0 and the process non-dumpable (PR_SET_DUMPABLE), unless
 * QBCDC_ALLOW_CORE_DUMPS=1 asks for dumps (debugging), which is then logged. The store keeps
 * its key on a page left out of dumps either way (MADV_DONTDUMP). Call first in main.
 */
void qbc_harden_process(void);

#endif
