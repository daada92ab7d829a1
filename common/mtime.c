#include "common/mtime.h"

#include <time.h>

static uint64_t
now(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

uint64_t
time_mono_ns(void)
{
    return now(CLOCK_MONOTONIC);
}

uint64_t
time_mono_ms(void)
{
    return now(CLOCK_MONOTONIC) / NSEC_PER_MSEC;
}

uint64_t
time_real_ms(void)
{
    return now(CLOCK_REALTIME) / NSEC_PER_MSEC;
}
