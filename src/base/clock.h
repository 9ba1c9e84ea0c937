/* clock.h: the wall clock, with a hook so tests and tools can pin "now" (rule 42). */
#ifndef SUBGATE_BASE_CLOCK_H
#define SUBGATE_BASE_CLOCK_H

#include <stdint.h>

/* Unix seconds: the fake time when one is set, else the real clock. */
int64_t clock_now(void);

/* Unix milliseconds: the fake time's second when one is set, else the real clock. */
int64_t clock_now_ms(void);

/* Monotonic milliseconds, for latencies and timeouts. */
int64_t clock_mono_ms(void);

/* Monotonic microseconds, for durations. */
int64_t clock_mono_us(void);

/* Pins clock_now() to t; t < 0 goes back to the real clock. Tests only. */
void clock_set_fake(int64_t t);

#endif /* SUBGATE_BASE_CLOCK_H */
