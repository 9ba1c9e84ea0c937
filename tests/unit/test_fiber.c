/* test_fiber.c: cooperative fibers (base/fiber.h) and the write pool's fiber mode (http/offload.h).
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "base/fiber.h"
#include "http/offload.h"
#include "t.h"

#define STACK (512 * 1024)

/* What the fibers did, in order: id * 10 + step. */
static int trail[256];
static int ntrail;

static void note(int v)
{
    if (ntrail < (int)(sizeof(trail) / sizeof(trail[0])))
        trail[ntrail++] = v;
}

/* A flush that wakes every fiber parked for it, oldest first. */
struct waiters {
    struct fiber *f[64];
    int n;
    int flushes;   /* calls */
    int most_seen; /* the most fibers parked at one call */
};

static void wake_all(void *arg)
{
    struct waiters *w = arg;

    w->flushes++;
    if (w->n > w->most_seen)
        w->most_seen = w->n;
    for (int i = 0; i < w->n; i++)
        fiber_wake(w->f[i]);
    w->n = 0;
}

static void wait_for(struct waiters *w)
{
    w->f[w->n++] = fiber_self();
    fiber_park(wake_all, w);
}

struct job {
    int id;
    int parks;
    struct waiters *w;
    struct waiters *w2; /* a second flush to wait for, after the first, when set */
    bool self_seen;
};

static void job_run(void *arg)
{
    struct job *j = arg;

    j->self_seen = fiber_self() != NULL;
    note(j->id * 10);
    for (int p = 0; p < j->parks; p++) {
        wait_for(j->w);
        note(j->id * 10 + p + 1);
    }
    if (j->w2) {
        wait_for(j->w2);
        note(j->id * 10 + 9);
    }
}

static void test_run_to_end(void)
{
    struct fiber_sched *s = fiber_sched_new(2, STACK);
    struct job j = { .id = 1 };

    T_OK(s != NULL, "a scheduler");
    T_OK(fiber_self() == NULL, "no fiber outside one");
    ntrail = 0;
    T_OK(fiber_sched_start(s, job_run, &j), "started");
    T_OK(j.self_seen, "fiber_self inside one");
    T_EQ_I64(ntrail, 1, "a fiber that never parks runs to its end at once");
    fiber_sched_settle(s); /* nothing parked: returns */
    T_OK(fiber_self() == NULL, "no fiber after it");
    fiber_sched_free(s);
}

static void test_park_and_flush(void)
{
    struct fiber_sched *s = fiber_sched_new(8, STACK);
    struct waiters w = { 0 };
    struct job j[5];

    ntrail = 0;
    for (int i = 0; i < 5; i++) {
        j[i] = (struct job){ .id = i + 1, .parks = 2, .w = &w };
        T_OK(fiber_sched_start(s, job_run, &j[i]), "fiber %d started", i + 1);
    }
    T_EQ_I64(ntrail, 5, "each ran to its first park");
    T_EQ_I64(w.flushes, 0, "no flush before the settle");
    T_EQ_I64(w.n, 5, "all five parked");
    fiber_sched_settle(s);
    T_EQ_I64(w.flushes, 2, "one flush a round, two rounds");
    T_EQ_I64(w.most_seen, 5, "each flush found all five parked");
    T_EQ_I64(ntrail, 15, "each ran to its end");
    {
        const int want[15] = { 10, 20, 30, 40, 50, 11, 21, 31, 41, 51, 12, 22, 32, 42, 52 };
        T_OK(memcmp(trail, want, sizeof(want)) == 0, "woken in the order they parked");
    }
    fiber_sched_free(s);
}

static void test_room(void)
{
    struct fiber_sched *s = fiber_sched_new(2, STACK);
    struct waiters w = { 0 };
    struct job j[3];

    for (int i = 0; i < 3; i++)
        j[i] = (struct job){ .id = i + 1, .parks = 1, .w = &w };
    T_OK(fiber_sched_start(s, job_run, &j[0]) && fiber_sched_start(s, job_run, &j[1]),
         "two started");
    T_OK(!fiber_sched_room(s), "no room for a third");
    T_OK(!fiber_sched_start(s, job_run, &j[2]), "a third is refused");
    fiber_sched_settle(s);
    T_OK(fiber_sched_room(s), "room again once they ended");
    T_OK(fiber_sched_start(s, job_run, &j[2]), "and a stack reused");
    fiber_sched_settle(s);
    fiber_sched_free(s);
}

static void test_two_flushes(void)
{
    struct fiber_sched *s = fiber_sched_new(4, STACK);
    struct waiters a = { 0 }, b = { 0 };
    struct job j1 = { .id = 1, .parks = 1, .w = &a }, j2 = { .id = 2, .parks = 0, .w2 = &b };

    ntrail = 0;
    T_OK(fiber_sched_start(s, job_run, &j1) && fiber_sched_start(s, job_run, &j2), "started");
    fiber_sched_settle(s);
    T_EQ_I64(a.flushes, 1, "the first flush ran");
    T_EQ_I64(b.flushes, 1, "the second too, in the same round");
    T_EQ_I64(ntrail, 4, "both fibers ended");
    fiber_sched_free(s);
}

/*
 * Away parks: fiber A hands work to a thread and parks away; fiber B, parked on a flush twice
 * meanwhile, runs to its end, and only then does the thread (told by B's end, or after 5 s)
 * finish A's work and wake it.
 */
struct away {
    struct fiber *fiber;
    sem_t b_done;
    bool b_seen; /* B's end came before the thread's wait ran out */
    int result;  /* written by the thread */
    int seen;    /* what A read after it was woken */
};

static void *away_thread(void *arg)
{
    struct away *a = arg;
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    while (sem_timedwait(&a->b_done, &until) != 0 && errno == EINTR)
        ;
    a->b_seen = sem_trywait(&a->b_done) == 0 || a->b_seen;
    a->result = 42;
    fiber_wake_away(a->fiber);
    return NULL;
}

static struct away away_a;

static void away_job(void *arg)
{
    pthread_t th;

    (void)arg;
    note(10);
    away_a.fiber = fiber_self();
    if (pthread_create(&th, NULL, away_thread, &away_a) != 0)
        return;
    (void)pthread_detach(th);
    fiber_park_away();
    away_a.seen = away_a.result;
    note(11);
}

static void b_job(void *arg)
{
    struct waiters *w = arg;

    note(20);
    wait_for(w);
    note(21);
    wait_for(w);
    note(22);
    away_a.b_seen = true;
    sem_post(&away_a.b_done);
}

static void early_job(void *arg)
{
    (void)arg;
    fiber_wake_away(fiber_self()); /* the other thread quicker than the park */
    fiber_park_away();
    note(30);
}

static void test_park_away(void)
{
    struct fiber_sched *s = fiber_sched_new(4, STACK);
    struct waiters w = { 0 };

    ntrail = 0;
    sem_init(&away_a.b_done, 0, 0);
    T_OK(fiber_sched_start(s, away_job, NULL) && fiber_sched_start(s, b_job, &w) &&
             fiber_sched_start(s, early_job, NULL),
         "three started");
    fiber_sched_settle(s);
    T_OK(away_a.b_seen, "the other fibers ran while one was parked away");
    T_EQ_I64(w.flushes, 2, "their flushes ran meanwhile");
    T_EQ_I64(away_a.seen, 42, "the fiber parked away sees what the other thread wrote");
    T_EQ_I64(ntrail, 6, "settle returned once every fiber ended, the away one too");
    {
        const int want[6] = { 10, 20, 30, 21, 22, 11 };
        T_OK(memcmp(trail, want, sizeof(want)) == 0,
             "woken away (before its park): runs first in the next round; the one away last");
    }
    T_OK(fiber_sched_room(s), "every fiber ended");
    fiber_sched_free(s);
    sem_destroy(&away_a.b_done);
}

/* Deep, as a parser's recursion is: about 300 KiB of small frames, then its deepest frame. */
static uintptr_t deepest;

__attribute__((noinline)) static int dig(int n)
{
    volatile char pad[200];

    for (size_t i = 0; i < sizeof(pad); i++)
        pad[i] = (char)n;
    if (n == 0) {
        deepest = (uintptr_t)&pad[0];
        return pad[0];
    }
    return dig(n - 1) + pad[sizeof(pad) - 1];
}

static void deep_job(void *arg)
{
    (void)arg;
    (void)dig(1200);
}

static bool resident(uintptr_t addr)
{
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    unsigned char v = 0;

    if (mincore((void *)(addr & ~(page - 1)), page, &v) != 0)
        return true;
    return (v & 1) != 0;
}

static void test_deep_stack_trimmed(void)
{
    struct fiber_sched *s = fiber_sched_new(1, STACK);
    uintptr_t first;

    T_OK(fiber_sched_start(s, deep_job, NULL), "a deep job ran");
    first = deepest;
    T_OK(first != 0, "its deepest frame seen");
    T_OK(!resident(first), "its deep pages were given back when it ended");
    T_OK(fiber_sched_start(s, deep_job, NULL), "a second deep job on the same stack");
    T_OK(deepest == first, "the stack was reused");
    T_OK(!resident(deepest), "given back again");
    fiber_sched_free(s);
}

/* The write pool's fiber mode: jobs that park run to their end, their flushes batched. */
static struct waiters pool_w;
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static int pool_done;

static void pool_job(void *arg)
{
    (void)arg;
    wait_for(&pool_w);
    pthread_mutex_lock(&pool_mu);
    pool_done++;
    pthread_mutex_unlock(&pool_mu);
}

static void test_offload_fibers(void)
{
    struct offload *o = offload_new_fibers(16, 64, STACK);
    int workers = 0, idle = 0, queued = 0;

    T_OK(o != NULL, "a fiber pool");
    for (int i = 0; i < 40; i++)
        queued += offload_submit(o, pool_job, NULL);
    T_EQ_I64(queued, 40, "forty jobs queued");
    offload_counts(o, &workers, &idle);
    T_EQ_I64(workers, 1, "one thread, whatever the jobs in flight");
    offload_free(o); /* runs what is queued first */
    T_EQ_I64(pool_done, 40, "every job ran to its end");
    T_OK(pool_w.flushes >= 3, "at most 16 at once: %d flushes", pool_w.flushes);
    T_OK(pool_w.most_seen <= 16, "never more than 16 parked: %d", pool_w.most_seen);
}

/*
 * Values live across a park sit in the registers a callee keeps (or in the fiber's frame):
 * a switch that lost one would change the result. Two fibers interleave, and the scheduler's
 * own values live across its switches too.
 */
__attribute__((noinline)) static uint64_t mix(uint64_t x)
{
    return (x ^ (x >> 29)) * UINT64_C(0x9e3779b97f4a7c15);
}

static uint64_t fold(uint64_t seed, struct waiters *w)
{
    uint64_t a = mix(seed), b = mix(a), c = mix(b), d = mix(c), e = mix(d), f = mix(e);

    if (w)
        wait_for(w);
    return a ^ (b << 1) ^ (c << 2) ^ (d << 3) ^ (e << 4) ^ (f << 5) ^ mix(seed + 1);
}

struct regs_job {
    uint64_t seed, got;
    struct waiters *w;
};

static void regs_job_run(void *arg)
{
    struct regs_job *r = arg;

    r->got = fold(r->seed, r->w);
    r->got ^= fold(r->got, r->w); /* parked twice */
}

static void test_registers_kept(void)
{
    struct fiber_sched *s = fiber_sched_new(4, STACK);
    struct waiters w = { 0 };
    struct regs_job r[2] = { { 11, 0, &w }, { 12, 0, &w } };
    uint64_t mine = mix(99), want[2];

    for (int i = 0; i < 2; i++) {
        want[i] = fold(r[i].seed, NULL);
        want[i] ^= fold(want[i], NULL);
    }
    T_OK(fiber_sched_start(s, regs_job_run, &r[0]) && fiber_sched_start(s, regs_job_run, &r[1]),
         "two fibers parked");
    fiber_sched_settle(s);
    T_OK(r[0].got == want[0] && r[1].got == want[1], "each fiber's values kept across its parks");
    T_OK(mine == mix(99), "and the scheduler's across its switches");
    fiber_sched_free(s);
}

#if defined(__x86_64__)
static uint32_t mxcsr_get(void)
{
    uint32_t v;

    __asm__ volatile("stmxcsr %0" : "=m"(v));
    return v;
}

static void mxcsr_set(uint32_t v)
{
    __asm__ volatile("ldmxcsr %0" : : "m"(v));
}

static uint16_t fpucw_get(void)
{
    uint16_t v;

    __asm__ volatile("fnstcw %0" : "=m"(v));
    return v;
}

static void fpucw_set(uint16_t v)
{
    __asm__ volatile("fldcw %0" : : "m"(v));
}

#define MXCSR_TOWARD_ZERO 0x6000u /* rounding control, bits 13-14 */
#define FPUCW_TOWARD_ZERO 0x0C00u /* rounding control, bits 10-11 */

struct round_job {
    struct waiters *w;
    bool kept;
    char text[32];
};

static void round_job_run(void *arg)
{
    struct round_job *r = arg;
    uint32_t mx = mxcsr_get();
    uint16_t cw = fpucw_get();

    mxcsr_set(mx | MXCSR_TOWARD_ZERO);
    fpucw_set((uint16_t)(cw | FPUCW_TOWARD_ZERO));
    wait_for(r->w);
    r->kept = (mxcsr_get() & MXCSR_TOWARD_ZERO) == MXCSR_TOWARD_ZERO &&
              (fpucw_get() & FPUCW_TOWARD_ZERO) == FPUCW_TOWARD_ZERO;
    mxcsr_set(mx);
    fpucw_set(cw);
    snprintf(r->text, sizeof(r->text), "%.3f %.2Lf", 3.14159, (long double)2.675L);
}

/* The SSE and x87 control words (rounding) are each fiber's own, and the stack aligned. */
static void test_float_state(void)
{
    struct fiber_sched *s = fiber_sched_new(2, STACK);
    struct waiters w = { 0 };
    struct round_job r = { &w, false, "" };
    uint32_t mx = mxcsr_get();
    uint16_t cw = fpucw_get();

    T_OK(fiber_sched_start(s, round_job_run, &r), "a fiber set rounding toward zero and parked");
    T_EQ_I64(mxcsr_get(), mx, "the scheduler's SSE control word is its own");
    T_EQ_I64(fpucw_get(), cw, "the scheduler's x87 control word is its own");
    fiber_sched_settle(s);
    T_OK(r.kept, "the fiber's rounding was kept across its park");
    T_EQ_STR(r.text, "3.142 2.67", "formatting doubles and long doubles on a fiber");
    fiber_sched_free(s);
}
#endif

int main(void)
{
    test_run_to_end();
    test_park_and_flush();
    test_room();
    test_two_flushes();
    test_park_away();
    test_deep_stack_trimmed();
    test_offload_fibers();
    test_registers_kept();
#if defined(__x86_64__)
    test_float_state();
#endif
    return t_done();
}
