/* Log budgets (ratelimit.h). */
#include "proto/ratelimit.h"

#include <stddef.h>

bool
ratelimit_ok(struct ratelimit *rl, uint64_t now_ms, uint64_t *suppressed)
{
    if (suppressed)
        *suppressed = 0;
    if (rl->window_start == 0 || now_ms - rl->window_start >= rl->interval_ms) {
        rl->window_start = now_ms ? now_ms : 1;
        rl->used = 0;
        if (suppressed)
            *suppressed = rl->suppressed;
        rl->suppressed = 0;
    }
    if (rl->used < rl->burst) {
        rl->used++;
        return true;
    }
    rl->suppressed++;
    return false;
}
