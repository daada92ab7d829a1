/* Clocks. Timeouts and heartbeats use the monotonic clock only; wall time is
 * for timestamps shown to people and stored in records. */
#pragma once

#include <stdint.h>

#define NSEC_PER_MSEC 1000000ULL
#define NSEC_PER_SEC  1000000000ULL

uint64_t time_mono_ns(void);
uint64_t time_mono_ms(void);
/* Milliseconds since the Unix epoch. */
uint64_t time_real_ms(void);
