/* test_offload.c: the bounded pool for slow work (http/offload.h): its threads start on demand. */
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>

#include "http/offload.h"
#include "t.h"

/* A gate the jobs wait at until the test opens it, and a count of the jobs that ran. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool open;
    int started, ran;
};

static struct gate g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0, 0 };

static void gate_reset(bool open)
{
    pthread_mutex_lock(&g.mu);
    g.open = open;
    g.started = g.ran = 0;
    pthread_mutex_unlock(&g.mu);
}

static void gate_open(void)
{
    pthread_mutex_lock(&g.mu);
    g.open = true;
    pthread_cond_broadcast(&g.cond);
    pthread_mutex_unlock(&g.mu);
}

/* Waits until n jobs have started (they hold their workers). */
static void wait_started(int n)
{
    pthread_mutex_lock(&g.mu);
    while (g.started < n)
        pthread_cond_wait(&g.cond, &g.mu);
    pthread_mutex_unlock(&g.mu);
}

static void wait_ran(int n)
{
    pthread_mutex_lock(&g.mu);
    while (g.ran < n)
        pthread_cond_wait(&g.cond, &g.mu);
    pthread_mutex_unlock(&g.mu);
}

static void job(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&g.mu);
    g.started++;
    pthread_cond_broadcast(&g.cond);
    while (!g.open)
        pthread_cond_wait(&g.cond, &g.mu);
    g.ran++;
    pthread_cond_broadcast(&g.cond);
    pthread_mutex_unlock(&g.mu);
}

static int workers_of(struct offload *o)
{
    int workers, idle;

    offload_counts(o, &workers, &idle);
    return workers;
}

/* Waits until every started worker waits for a job. */
static void wait_idle(struct offload *o)
{
    int workers, idle;

    for (offload_counts(o, &workers, &idle); idle < workers; offload_counts(o, &workers, &idle))
        (void)sched_yield();
}

/* Jobs that come one after another, each done before the next, need one thread. */
static void test_one_at_a_time(void)
{
    struct offload *o = offload_new(8, 16);

    gate_reset(true);
    T_OK(o != NULL, "made");
    T_EQ_I64(workers_of(o), 1, "one thread at the start");
    for (int i = 0; i < 20; i++) {
        wait_idle(o); /* the worker waits for a job (the last one done): this one is for it */
        T_OK(offload_submit(o, job, NULL), "job %d queued", i);
        wait_ran(i + 1);
    }
    T_EQ_I64(workers_of(o), 1, "twenty jobs in turn: still one thread");
    offload_free(o);
}

/* Jobs that wait together start threads, up to the most; past it they queue, then are refused. */
static void test_burst(void)
{
    struct offload *o = offload_new(4, 2);

    gate_reset(false);
    for (int i = 0; i < 4; i++)
        T_OK(offload_submit(o, job, NULL), "job %d queued", i);
    wait_started(4);
    T_EQ_I64(workers_of(o), 4, "four jobs held at once: four threads");
    T_OK(offload_submit(o, job, NULL), "a fifth waits in the queue");
    T_OK(offload_submit(o, job, NULL), "a sixth too");
    T_OK(!offload_submit(o, job, NULL), "a seventh finds the queue full");
    T_EQ_I64(workers_of(o), 4, "never more threads than asked for");
    gate_open();
    wait_ran(6);
    T_EQ_I64(g.ran, 6, "every queued job ran");
    offload_free(o);
}

/* offload_free runs what is queued before it returns. */
static void test_free_runs_queued(void)
{
    struct offload *o = offload_new(1, 8);

    gate_reset(false);
    for (int i = 0; i < 5; i++)
        T_OK(offload_submit(o, job, NULL), "job %d queued", i);
    wait_started(1);
    gate_open();
    offload_free(o);
    T_EQ_I64(g.ran, 5, "all five ran before the pool was freed");
}

int main(void)
{
    test_one_at_a_time();
    test_burst();
    test_free_runs_queued();
    return t_done();
}
