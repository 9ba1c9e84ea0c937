/* offload.c: the bounded pool for slow requests (see offload.h). */
#include "http/offload.h"

#include <pthread.h>
#include <stdlib.h>

#include "base/log.h"
#include "base/xalloc.h"

struct job {
    offload_fn fn;
    void *arg;
};

struct offload {
    pthread_mutex_t mu;
    pthread_cond_t ready; /* a job queued, or stopping */
    struct job *ring;     /* queue_max slots */
    int queue_max, head, len;
    bool stopping;
    pthread_t *threads;
    int workers;
};

static void *worker_main(void *arg)
{
    struct offload *o = arg;

    pthread_mutex_lock(&o->mu);
    for (;;) {
        while (o->len == 0 && !o->stopping)
            pthread_cond_wait(&o->ready, &o->mu);
        if (o->len == 0)
            break; /* stopping, nothing left */
        struct job j = o->ring[o->head];
        o->head = (o->head + 1) % o->queue_max;
        o->len--;
        pthread_mutex_unlock(&o->mu);
        j.fn(j.arg);
        pthread_mutex_lock(&o->mu);
    }
    pthread_mutex_unlock(&o->mu);
    return NULL;
}

struct offload *offload_new(int workers, int queue_max)
{
    struct offload *o = xcalloc(1, sizeof(*o));

    o->queue_max = queue_max < 1 ? 1 : queue_max;
    o->ring = xcalloc((size_t)o->queue_max, sizeof(*o->ring));
    o->threads = xcalloc((size_t)(workers < 1 ? 1 : workers), sizeof(*o->threads));
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->ready, NULL);
    for (int i = 0; i < (workers < 1 ? 1 : workers); i++) {
        if (pthread_create(&o->threads[i], NULL, worker_main, o) != 0) {
            log_warn("offload: started %d of %d workers", i, workers);
            break;
        }
        o->workers++;
    }
    if (o->workers == 0) {
        offload_free(o);
        return NULL;
    }
    return o;
}

bool offload_submit(struct offload *o, offload_fn fn, void *arg)
{
    bool queued = false;

    pthread_mutex_lock(&o->mu);
    if (!o->stopping && o->len < o->queue_max) {
        o->ring[(o->head + o->len) % o->queue_max] = (struct job){ fn, arg };
        o->len++;
        queued = true;
        pthread_cond_signal(&o->ready);
    }
    pthread_mutex_unlock(&o->mu);
    return queued;
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
    free(o->threads);
    free(o->ring);
    free(o);
}
