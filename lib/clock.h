/* Milliseconds on a clock, for timeouts and deadlines (CLOCK_MONOTONIC, or CLOCK_BOOTTIME where
 * a suspend must count). */
#ifndef LIB_CLOCK_H
#define LIB_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t rfs_clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#endif
