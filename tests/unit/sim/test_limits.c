/* tests sim/limits.c: the sliding 500-per-minute window (qbo-facts §5). */
#include "../../../sim/limits.c"
#include "tap.h"

static const int64_t S = 1000000000LL;

int main(void)
{
    sim_ratelimit_t r;
    sim_ratelimit_init(&r, 500, 60 * S);
    int admitted = 0;
    for (int i = 0; i < 500; i++)
        admitted += sim_ratelimit_admit(&r, 1000 * S + i * 10000000LL, 1);
    is_int(admitted, 500, "500 in a minute admitted");
    is_int(sim_ratelimit_admit(&r, 1006 * S, 1), 0, "501st refused");
    is_int(sim_ratelimit_used(&r, 1006 * S), 500, "window holds 500");
    is_int(sim_ratelimit_admit(&r, 1059 * S, 1), 0, "still refused 59 s later");
    is_int(sim_ratelimit_admit(&r, 1060 * S + 1, 1), 1, "one slot frees after 60 s");
    is_int(sim_ratelimit_admit(&r, 1060 * S + 2, 1), 0, "but only one");
    is_int(sim_ratelimit_admit(&r, 1061 * S, 5), 1, "batch of 5 once 5 expired");
    is_int(sim_ratelimit_admit(&r, 2000 * S, 501), 0, "cost over the limit never fits");
    is_int(sim_ratelimit_admit(&r, 2000 * S, 500), 1, "cost equal to the limit fits an empty window");
    sim_ratelimit_dispose(&r);

    sim_ratelimit_init(&r, 0, 60 * S);
    is_int(sim_ratelimit_admit(&r, 1, 1000), 1, "limit 0 = unlimited");
    sim_ratelimit_dispose(&r);
    return done_testing();
}
