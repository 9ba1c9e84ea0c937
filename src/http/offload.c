/* offload.c: the bounded pool for slow requests (see offload.h). */
#include "http/offload.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#include "base/fiber.h"
#include "base/log.h"
#include "base/xalloc.h"

struct job {
    offload_fn fn;
    void *arg;
};

struct offload {
    pthread_mutex_t mu;
    pthread_cond_t ready; /* a job queued, or stopping */
    struct job *ring;     /* queue_max + workers_max slots */
    int queue_max, head, len;
    int busy; /* jobs taken by a worker and not yet done */
    bool stopping;
    pthread_t *threads;
    int workers;                /* started so far */
    int workers_max;            /* the most that may be started */
    int idle;                   /* workers waiting for a job */
    struct fiber_sched *fibers; /* fiber mode: the one worker runs workers_max jobs as fibers */
};

/* With o->mu held: waits for a job; false when stopping with none left. */
static bool job_wait(struct offload *o)
{
    o->idle++;
    while (o->len == 0 && !o->stopping)
        pthread_cond_wait(&o->ready, &o->mu);
    o->idle--;
    return o->len > 0;
}

/* With o->mu held and a job queued: takes the oldest, which counts as in flight from now. */
static struct job job_take(struct offload *o)
{
    struct job j = o->ring[o->head];

    o->head = (o->head + 1) % (o->queue_max + o->workers_max);
    o->len--;
    o->busy++;
    return j;
}

/* A job on a fiber: when it returns, it no longer counts as in flight. */
struct fiber_job {
    struct offload *o;
    struct job j;
};

static void fiber_job_run(void *arg)
{
    struct fiber_job *fj = arg;
    struct offload *o = fj->o;

    fj->j.fn(fj->j.arg);
    free(fj);
    pthread_mutex_lock(&o->mu);
    o->busy--;
    pthread_mutex_unlock(&o->mu);
}

/*
 * The worker of fiber mode: takes every queued job it has room for, starts each on a fiber
 * (each runs until it waits for its commit), then settles them: their writes commit in shared
 * batches. At SCHED_BATCH its wake-up does not preempt the serving thread that queued the job,
 * so on a busy core that thread goes on reading requests, and their writes join the batch.
 */
static void *fiber_worker_main(void *arg)
{
    struct offload *o = arg;
    struct sched_param sp = { 0 };

    (void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp); /* a hint: fine if refused */
    pthread_mutex_lock(&o->mu);
    while (job_wait(o)) {
        while (o->len > 0 && fiber_sched_room(o->fibers)) {
            struct fiber_job *fj = xmalloc(sizeof(*fj));
            fj->o = o;
            fj->j = job_take(o);
            pthread_mutex_unlock(&o->mu);
            if (!fiber_sched_start(o->fibers, fiber_job_run, fj))
                fiber_job_run(fj); /* no stack to be had: on this one, alone */
            pthread_mutex_lock(&o->mu);
        }
        pthread_mutex_unlock(&o->mu);
        fiber_sched_settle(o->fibers);
        pthread_mutex_lock(&o->mu);
    }
    pthread_mutex_unlock(&o->mu);
    return NULL;
}

static void *worker_main(void *arg)
{
    struct offload *o = arg;

    pthread_mutex_lock(&o->mu);
    while (job_wait(o)) { /* until stopping, nothing left */
        struct job j = job_take(o);
        pthread_mutex_unlock(&o->mu);
        j.fn(j.arg);
        pthread_mutex_lock(&o->mu);
        o->busy--;
    }
    pthread_mutex_unlock(&o->mu);
    return NULL;
}

/* Starts one more worker; called with o->mu held, or before o is shared. */
static bool worker_start(struct offload *o)
{
    if (o->workers >= (o->fibers ? 1 : o->workers_max) ||
        pthread_create(&o->threads[o->workers], NULL, o->fibers ? fiber_worker_main : worker_main,
                       o) != 0)
        return false;
    o->workers++;
    return true;
}

struct offload *offload_new(int workers, int queue_max)
{
    return offload_new_fibers(workers, queue_max, 0);
}

struct offload *offload_new_fibers(int workers, int queue_max, size_t fiber_stack)
{
    struct offload *o = xcalloc(1, sizeof(*o));

    o->queue_max = queue_max < 1 ? 1 : queue_max;
    o->workers_max = workers < 1 ? 1 : workers;
    o->ring = xcalloc((size_t)o->queue_max + (size_t)o->workers_max, sizeof(*o->ring));
    o->threads = xcalloc((size_t)o->workers_max, sizeof(*o->threads));
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->ready, NULL);
    if (fiber_stack > 0 && !(o->fibers = fiber_sched_new(o->workers_max, fiber_stack))) {
        offload_free(o);
        return NULL;
    }
    if (!worker_start(o)) { /* the rest start as jobs find every worker busy */
        offload_free(o);
        return NULL;
    }
    return o;
}

/*
 * The idle worker is woken after the mu is released: woken on this core while the mu is held, it
 * would run only to wait for the mu, two task switches more per job.
 */
bool offload_submit(struct offload *o, offload_fn fn, void *arg)
{
    bool queued = false, wake = false;

    pthread_mutex_lock(&o->mu);
    /* workers_max jobs may run and queue_max more wait, whether or not a worker took them yet */
    if (!o->stopping && o->busy + o->len < o->workers_max + o->queue_max) {
        o->ring[(o->head + o->len) % (o->queue_max + o->workers_max)] = (struct job){ fn, arg };
        o->len++;
        queued = true;
        /* every worker busy: one more, while there may be more (else the job waits its turn) */
        if (!o->fibers && o->idle < o->len && o->workers < o->workers_max && !worker_start(o))
            log_warn("offload: could not start worker %d of %d", o->workers + 1, o->workers_max);
        wake = o->idle > 0;
    }
    pthread_mutex_unlock(&o->mu);
    if (wake)
        pthread_cond_signal(&o->ready); /* o outlives every submit: offload_free comes after */
    return queued;
}

bool offload_is_fibers(const struct offload *o)
{
    return o->fibers != NULL;
}

void offload_counts(struct offload *o, int *workers, int *idle)
{
    pthread_mutex_lock(&o->mu);
    *workers = o->workers;
    *idle = o->idle;
    pthread_mutex_unlock(&o->mu);
}

void offload_free(struct offload *o)
{
    if (!o)
        return;
    pthread_mutex_lock(&o->mu);
    o->stopping = true;
    pthread_cond_broadcast(&o->ready);
    pthread_mutex_unlock(&o->mu);
    for (int i = 0; i < o->workers; i++)
        pthread_join(o->threads[i], NULL);
    pthread_cond_destroy(&o->ready);
    pthread_mutex_destroy(&o->mu);
    fiber_sched_free(o->fibers);
    free(o->threads);
    free(o->ring);
    free(o);
}
