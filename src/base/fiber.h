/*
 * fiber.h: cooperative fibers on one thread. A scheduler runs functions on stacks of their own;
 * a fiber that must wait for work done for many (a commit shared by a batch of writes) parks,
 * and once every fiber of its thread is parked or done the scheduler runs the flush they asked
 * for, which wakes them. Nothing here is shared between threads: a scheduler, its fibers and
 * their flushes all run on the thread that owns it.
 */
#ifndef SUBGATE_BASE_FIBER_H
#define SUBGATE_BASE_FIBER_H

#include <stdbool.h>
#include <stddef.h>

struct fiber;       /* opaque */
struct fiber_sched; /* opaque */

typedef void (*fiber_fn)(void *arg);

/* A scheduler for up to max fibers at once, each on a stack of stack_size bytes; NULL on failure.
 */
struct fiber_sched *fiber_sched_new(int max, size_t stack_size);

/* Frees s and the stacks it keeps; no fiber of it may be parked. NULL is a no-op. */
void fiber_sched_free(struct fiber_sched *s);

/* Whether s can start one more fiber now. */
bool fiber_sched_room(const struct fiber_sched *s);

/*
 * Runs fn(arg) on a new fiber of s until it parks or returns; false (fn not run) when s has no
 * room or no stack can be had. Called on the owning thread, outside any fiber.
 */
bool fiber_sched_start(struct fiber_sched *s, fiber_fn fn, void *arg);

/*
 * Until no fiber of s is parked: runs the flushes the parked fibers asked for, then the fibers
 * they woke, each until it parks again or returns. Fibers woken from away (fiber_park_away) run
 * first in each round, so that what they park for joins its flushes, which wait up to 2 ms for
 * the fibers still away; when nothing can run but fibers parked away, waits for the first of
 * them to be woken.
 */
void fiber_sched_settle(struct fiber_sched *s);

/* The fiber running on this thread, or NULL on a thread's own stack. */
struct fiber *fiber_self(void);

/*
 * Parks the running fiber until fiber_wake. flush(arg) runs on the scheduler's own stack once
 * every fiber is parked or done (one call for all the fibers that gave the same flush and arg)
 * and must wake each fiber that parked for it.
 */
void fiber_park(void (*flush)(void *arg), void *arg);

/* Makes a parked fiber runnable again; called from a flush of its scheduler. */
void fiber_wake(struct fiber *f);

/*
 * Parks the running fiber until fiber_wake_away: for work handed to another thread before the
 * call (the fiber from fiber_self in hand), which wakes it when done. The fiber's thread runs
 * its other fibers and their flushes meanwhile.
 */
void fiber_park_away(void);

/*
 * Makes a fiber parked (or about to park) by fiber_park_away runnable again, once per park;
 * from any thread. The fiber runs again on its own thread, after this returns: what the caller
 * wrote before it is seen there.
 */
void fiber_wake_away(struct fiber *f);

#endif /* SUBGATE_BASE_FIBER_H */
