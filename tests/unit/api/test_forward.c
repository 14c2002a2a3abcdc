/*
 * test_forward.c — api/forward.c's decision for a realm's admin request in cluster mode:
 * answered here, forwarded to the owner, or 503 (a loop between two nodes that disagree about
 * the owner ends at the second node; no owner known).
 */
#include "api_internal.h"
#include "../../tap.h"

int main(void)
{
    is_int(qbc_api__forward_decide(1, 0), QBC_FWD_LOCAL, "owned here: answered here");
    is_int(qbc_api__forward_decide(1, 1), QBC_FWD_LOCAL, "owned here and forwarded by another node: answered here");
    is_int(qbc_api__forward_decide(0, 0), QBC_FWD_FORWARD, "another node's, its URL known: forwarded");
    is_int(qbc_api__forward_decide(0, 1), QBC_FWD_LOOP,
           "another node's but already forwarded: 503, never sent on (no ping-pong)");
    is_int(qbc_api__forward_decide(QBC_ENOTFOUND, 0), QBC_FWD_NO_OWNER, "no owner (or URL) known: 503");
    is_int(qbc_api__forward_decide(QBC_ENOTFOUND, 1), QBC_FWD_LOOP, "forwarded here and no owner known: 503 too");
    return done_testing();
}
