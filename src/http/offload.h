/*
 * offload.h: a bounded pool of threads for slow work (requests that call Stripe), so it never
 * holds the threads that serve everything else. A job that finds the queue full is refused at
 * once: the server answers 503 with Retry-After instead of queueing without bound.
 */
#ifndef SUBGATE_HTTP_OFFLOAD_H
#define SUBGATE_HTTP_OFFLOAD_H

#include <stdbool.h>
#include <stddef.h>

struct offload; /* opaque */

typedef void (*offload_fn)(void *arg);

/*
 * A pool of up to workers (>= 1) threads taking jobs from a queue of at most queue_max (>= 1)
 * waiting. One thread starts here (NULL when it cannot); another starts each time a job is
 * queued while every started thread is busy, until there are workers of them, so a pool sized
 * for bursts costs no threads (and no memory of theirs) until bursts come.
 */
struct offload *offload_new(int workers, int queue_max);

/*
 * Like offload_new, but one thread runs up to workers jobs at once, each on a fiber with a
 * stack of fiber_stack bytes (0: threads, as offload_new): a job whose write waits for its
 * commit parks, and the writes of the jobs parked together commit in one batch
 * (store_group_run).
 */
struct offload *offload_new_fibers(int workers, int queue_max, size_t fiber_stack);

/* Whether o runs its jobs as fibers of one thread (offload_new_fibers with a stack size). */
bool offload_is_fibers(const struct offload *o);

/* Queues fn(arg) for a worker; false (nothing queued) when the queue is full or stopping. */
bool offload_submit(struct offload *o, offload_fn fn, void *arg);

/* How many worker threads it has started so far, and how many of them wait for a job now. */
void offload_counts(struct offload *o, int *workers, int *idle);

/* Runs the queued jobs to the end, joins the workers and frees o. NULL is a no-op. */
void offload_free(struct offload *o);

#endif /* SUBGATE_HTTP_OFFLOAD_H */
