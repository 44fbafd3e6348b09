/* Monotonic time in nanoseconds, for durations (Ollama reports them in ns). */
#ifndef HL_BASE_CLOCK_H
#define HL_BASE_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t hl_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

#endif
