/*
 * fiber.c: cooperative fibers (see fiber.h). On x86-64 a switch is a dozen instructions of our
 * own (below); elsewhere glibc's ucontext, whose every switch is also a system call (it saves
 * and restores the signal mask, which fibers never change). Stacks are mapped once, with
 * a guard page below each, and kept for the next fiber: a finished fiber's stack is reused
 * last in, first out, so the pages touched stay few. A job that went deeper than TRIM_AT (a
 * JSON body nested thousands deep, which the parser refuses only at its depth limit) gives
 * those pages back when it ends, so each kept stack stays about TRIM_AT resident: words just
 * past that depth, written when the stack is mapped, tell whether it was reached. Under
 * AddressSanitizer each switch is announced to it, so that it follows the stack in use.
 */
#include "base/fiber.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "base/base.h"
#include "base/log.h"
#include "base/xalloc.h"

#if defined(__SANITIZE_ADDRESS__)
#define FIBER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FIBER_ASAN 1
#endif
#endif

#ifdef FIBER_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#define FLUSH_MAX      4    /* distinct flushes asked for in one round: one store asks for one */
#define AWAY_GATHER_US 2000 /* the longest a round's flushes wait for fibers away (away_gather) */
#define TRIM_AT \
    ((size_t)64 * 1024) /* a stack's pages deeper than this are given back after a job */
#define CANARY      UINT64_C(0x5ca1ab1e0ddba11)
#define CANARIES    8              /* words that tell a job went past TRIM_AT */
#define CANARY_SPAN ((size_t)4096) /* bytes they are spread over, just past TRIM_AT */

#if defined(__x86_64__) && !defined(FIBER_UCONTEXT)
#define FIBER_SWITCH 1
/*
 * fiber_switch(save, to): pushes the registers the System V ABI has a callee keep (rbx, rbp,
 * r12-r15, and the SSE and x87 control words), stores the stack pointer in *save, takes to as
 * the stack pointer and pops the same from there; its ret returns into the code that saved
 * them. Everything else the caller expects lost across a call. fiber_start is where a new
 * fiber's first switch returns to: its stack (fiber_prepare) holds the fiber in r12's slot and
 * fiber_entry in r13's, and the call below is made with the stack 16-byte aligned.
 */
void subgate_fiber_switch(void **save, void *to);
void subgate_fiber_start(void);
__asm__(".text\n"
        ".p2align 4\n"
        ".globl subgate_fiber_switch\n"
        ".hidden subgate_fiber_switch\n"
        ".type subgate_fiber_switch, @function\n"
        "subgate_fiber_switch:\n"
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    subq $8, %rsp\n"
        "    stmxcsr (%rsp)\n"
        "    fnstcw 4(%rsp)\n"
        "    movq %rsp, (%rdi)\n"
        "    movq %rsi, %rsp\n"
        "    ldmxcsr (%rsp)\n"
        "    fldcw 4(%rsp)\n"
        "    addq $8, %rsp\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        "    ret\n"
        ".size subgate_fiber_switch, .-subgate_fiber_switch\n"
        ".p2align 4\n"
        ".globl subgate_fiber_start\n"
        ".hidden subgate_fiber_start\n"
        ".type subgate_fiber_start, @function\n"
        "subgate_fiber_start:\n"
        "    movq %r12, %rdi\n"
        "    callq *%r13\n"
        "    ud2\n"
        ".size subgate_fiber_start, .-subgate_fiber_start\n");
#endif

struct fiber {
#ifdef FIBER_SWITCH
    void *sp; /* its saved stack pointer while it is not running */
#else
    ucontext_t ctx;
#endif
    struct fiber_sched *s;
    void *map; /* the guard page, then the stack */
    void *stack;
    fiber_fn fn;
    void *arg;
    bool done;
    struct fiber *next; /* in the free or the ready list */
#ifdef FIBER_ASAN
    void *fake_stack;
#endif
};

struct fiber_sched {
#ifdef FIBER_SWITCH
    void *main_sp; /* the owning thread's own stack, where the scheduler runs */
#else
    ucontext_t main;
#endif
    size_t stack_size;
    int max, live, parked;
    struct fiber *free;                    /* finished fibers, their stacks kept */
    struct fiber *ready_head, *ready_tail; /* woken, not yet run again */
    void (*flush[FLUSH_MAX])(void *arg);
    void *flush_arg[FLUSH_MAX];
    int nflush;
    int away; /* of the parked, those parked away (fiber_park_away) and not yet taken back */
    /* Fibers woken by another thread, oldest first, guarded by away_mu; back_cond: one came. */
    pthread_mutex_t away_mu;
    pthread_cond_t back_cond;
    struct fiber *back_head, *back_tail;
    int nback; /* in the back list */
#ifdef FIBER_ASAN
    const void *main_bottom;
    size_t main_size;
#endif
};

static _Thread_local struct fiber *running;

struct fiber_sched *fiber_sched_new(int max, size_t stack_size)
{
    struct fiber_sched *s;
    long page = sysconf(_SC_PAGESIZE);

    if (max < 1 || page <= 0)
        return NULL;
    s = xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->away_mu, NULL);
    {
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* away_gather's deadline */
        pthread_cond_init(&s->back_cond, &attr);
        pthread_condattr_destroy(&attr);
    }
    s->max = max;
    s->stack_size = (stack_size + (size_t)page - 1) / (size_t)page * (size_t)page;
    return s;
}

/*
 * The words that tell whether a job reached the stack's deep part: CANARIES of them, spread
 * over the page just past TRIM_AT, so that a frame there which writes only some of its bytes
 * still changes one.
 */
static uint64_t *canaries_of(const struct fiber_sched *s, const struct fiber *f)
{
    return (uint64_t *)((char *)f->stack + s->stack_size - TRIM_AT - CANARY_SPAN);
}

static void canaries_set(const struct fiber_sched *s, struct fiber *f)
{
    uint64_t *c = canaries_of(s, f);

    for (size_t i = 0; i < CANARIES; i++)
        c[i * (CANARY_SPAN / CANARIES / sizeof(*c))] = CANARY;
}

static bool canaries_intact(const struct fiber_sched *s, const struct fiber *f)
{
    const uint64_t *c = canaries_of(s, f);

    for (size_t i = 0; i < CANARIES; i++)
        if (c[i * (CANARY_SPAN / CANARIES / sizeof(*c))] != CANARY)
            return false;
    return true;
}

/* After a job: the pages past TRIM_AT go back to the system when the job reached them. */
static void stack_trim(const struct fiber_sched *s, struct fiber *f)
{
    if (s->stack_size <= TRIM_AT + CANARY_SPAN)
        return;
#ifdef FIBER_ASAN
    __asan_unpoison_memory_region(f->stack, s->stack_size); /* what the ended job left */
#endif
    if (canaries_intact(s, f))
        return;
    (void)madvise(f->stack, s->stack_size - TRIM_AT, MADV_DONTNEED); /* read as zeros after */
    canaries_set(s, f);
}

static void fiber_unmap(struct fiber_sched *s, struct fiber *f)
{
    (void)munmap(f->map, s->stack_size + (size_t)sysconf(_SC_PAGESIZE));
    free(f);
}

void fiber_sched_free(struct fiber_sched *s)
{
    if (!s)
        return;
    while (s->free) {
        struct fiber *f = s->free;
        s->free = f->next;
        fiber_unmap(s, f);
    }
    pthread_cond_destroy(&s->back_cond);
    pthread_mutex_destroy(&s->away_mu);
    free(s);
}

bool fiber_sched_room(const struct fiber_sched *s)
{
    return s->live < s->max;
}

struct fiber *fiber_self(void)
{
    return running;
}

/* A fiber with a stack: a finished one's, or a new mapping; NULL when none can be had. */
static struct fiber *fiber_get(struct fiber_sched *s)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    struct fiber *f = s->free;
    void *map;

    if (f) {
        s->free = f->next;
        return f;
    }
    map = mmap(NULL, s->stack_size + page, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (map == MAP_FAILED)
        return NULL;
    if (mprotect(map, page, PROT_NONE) != 0) { /* the guard: an overflow faults, never corrupts */
        (void)munmap(map, s->stack_size + page);
        return NULL;
    }
    f = xcalloc(1, sizeof(*f));
    f->s = s;
    f->map = map;
    f->stack = (char *)map + page;
    if (s->stack_size > TRIM_AT + CANARY_SPAN)
        canaries_set(s, f);
    return f;
}

/* From the scheduler's stack to f's, until f parks or ends. */
static void switch_in(struct fiber_sched *s, struct fiber *f)
{
#ifdef FIBER_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(&fake, f->stack, s->stack_size);
#endif
    running = f;
#ifdef FIBER_SWITCH
    subgate_fiber_switch(&s->main_sp, f->sp);
#else
    (void)swapcontext(&s->main, &f->ctx);
#endif
    running = NULL;
#ifdef FIBER_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
    if (f->done) {
        stack_trim(s, f);
        s->live--;
        f->next = s->free;
        s->free = f;
    }
}

/* From the running fiber's stack to the scheduler's; returns when the fiber runs again. */
static void switch_out(struct fiber *f)
{
    struct fiber_sched *s = f->s;

#ifdef FIBER_ASAN
    __sanitizer_start_switch_fiber(f->done ? NULL : &f->fake_stack, s->main_bottom, s->main_size);
#endif
#ifdef FIBER_SWITCH
    subgate_fiber_switch(&f->sp, s->main_sp);
#else
    (void)swapcontext(&f->ctx, &s->main);
#endif
#ifdef FIBER_ASAN
    __sanitizer_finish_switch_fiber(f->fake_stack, &s->main_bottom, &s->main_size);
#endif
}

#ifdef FIBER_SWITCH
static void fiber_entry(struct fiber *f)
{
#else
static void fiber_entry(void)
{
    struct fiber *f = running;
#endif

#ifdef FIBER_ASAN
    __sanitizer_finish_switch_fiber(NULL, &f->s->main_bottom, &f->s->main_size);
#endif
    f->fn(f->arg);
    f->done = true;
    switch_out(f); /* never comes back: a done fiber is not run again */
    abort();
}

#ifdef FIBER_SWITCH
/*
 * f's stack as subgate_fiber_switch would have left it, its return into subgate_fiber_start:
 * from the top (16-byte aligned), two pad words, the return address, rbp (0: the end of the frame
 * chain), rbx, r12 (f), r13 (fiber_entry), r14, r15, then this thread's SSE and x87 control
 * words. The return leaves the stack pointer 16-byte aligned for subgate_fiber_start's call.
 */
static bool fiber_prepare(struct fiber *f)
{
    char *end = (char *)f->stack + f->s->stack_size;
    uint64_t *sp = (uint64_t *)(void *)(end - ((uintptr_t)end & 15)) - 10; /* from a 16-byte top */
    uint32_t mxcsr;
    uint16_t fpucw;

    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpucw));
    sp[0] = (uint64_t)mxcsr | (uint64_t)fpucw << 32;
    sp[1] = 0;                                 /* r15 */
    sp[2] = 0;                                 /* r14 */
    sp[3] = (uint64_t)(uintptr_t)&fiber_entry; /* r13 */
    sp[4] = (uint64_t)(uintptr_t)f;            /* r12 */
    sp[5] = 0;                                 /* rbx */
    sp[6] = 0;                                 /* rbp */
    sp[7] = (uint64_t)(uintptr_t)&subgate_fiber_start;
    sp[8] = 0;
    sp[9] = 0;
    f->sp = sp;
    return true;
}
#else
/*
 * f's context, to start at fiber_entry on its own stack. getcontext returns once here (the
 * context it saves is only a template for makecontext), but a compiler cannot know that: alone
 * in a function, nothing of the caller's is live across it.
 */
__attribute__((noinline)) static bool fiber_prepare(struct fiber *f)
{
    if (getcontext(&f->ctx) != 0)
        return false;
    f->ctx.uc_stack.ss_sp = f->stack;
    f->ctx.uc_stack.ss_size = f->s->stack_size;
    f->ctx.uc_link = NULL;
    makecontext(&f->ctx, fiber_entry, 0);
    return true;
}
#endif

bool fiber_sched_start(struct fiber_sched *s, fiber_fn fn, void *arg)
{
    struct fiber *f;

    if (running || !fiber_sched_room(s) || !(f = fiber_get(s)))
        return false;
    f->fn = fn;
    f->arg = arg;
    f->done = false;
    f->next = NULL;
    if (!fiber_prepare(f)) {
        f->next = s->free;
        s->free = f;
        return false;
    }
    s->live++;
    switch_in(s, f);
    return true;
}

void fiber_park(void (*flush)(void *arg), void *arg)
{
    struct fiber *f = running;
    struct fiber_sched *s;
    int i;

    if (!f) {
        log_error("fiber_park called outside a fiber");
        abort();
    }
    s = f->s;
    for (i = 0; i < s->nflush; i++)
        if (s->flush[i] == flush && s->flush_arg[i] == arg)
            break;
    if (i == s->nflush) {
        if (s->nflush == FLUSH_MAX) {
            log_error("fiber_park: more than %d flushes in one round", FLUSH_MAX);
            abort();
        }
        s->flush[i] = flush;
        s->flush_arg[i] = arg;
        s->nflush++;
    }
    s->parked++;
    switch_out(f);
}

/* Appends f to the list from *head to *tail (the ready list, or the back list). */
static void fiber_append(struct fiber **head, struct fiber **tail, struct fiber *f)
{
    f->next = NULL;
    if (*tail)
        (*tail)->next = f;
    else
        *head = f;
    *tail = f;
}

void fiber_wake(struct fiber *f)
{
    struct fiber_sched *s = f->s;

    s->parked--;
    fiber_append(&s->ready_head, &s->ready_tail, f);
}

void fiber_park_away(void)
{
    struct fiber *f = running;

    if (!f) {
        log_error("fiber_park_away called outside a fiber");
        abort();
    }
    f->s->parked++;
    f->s->away++;
    switch_out(f);
}

void fiber_wake_away(struct fiber *f)
{
    struct fiber_sched *s = f->s;

    pthread_mutex_lock(&s->away_mu);
    fiber_append(&s->back_head, &s->back_tail, f);
    s->nback++;
    pthread_cond_signal(&s->back_cond);
    pthread_mutex_unlock(&s->away_mu);
}

/*
 * The fibers woken away since the last call, made ready; when wait, and none was but some are
 * away, waits for one first.
 */
static void away_take_back(struct fiber_sched *s, bool wait)
{
    struct fiber *back;

    if (s->away == 0)
        return;
    pthread_mutex_lock(&s->away_mu);
    while (wait && !s->back_head)
        pthread_cond_wait(&s->back_cond, &s->away_mu);
    back = s->back_head;
    s->back_head = s->back_tail = NULL;
    s->nback = 0;
    pthread_mutex_unlock(&s->away_mu);
    for (struct fiber *f = back, *nx; f; f = nx) {
        nx = f->next;
        s->away--;
        fiber_wake(f);
    }
}

/*
 * With flushes asked for and fibers away: waits up to AWAY_GATHER_US for every one of them to be
 * woken, so that what they park for joins this round's flushes (a commit shared) rather than a
 * round of its own. Their work is a round trip like the commit's; one stuck costs this long.
 */
static void away_gather(struct fiber_sched *s)
{
    struct timespec until;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += AWAY_GATHER_US * 1000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->away_mu);
    while (s->nback < s->away &&
           pthread_cond_timedwait(&s->back_cond, &s->away_mu, &until) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&s->away_mu);
}

/* Runs the ready fibers, oldest first, each until it parks or ends. */
static void run_ready(struct fiber_sched *s)
{
    while (s->ready_head) {
        struct fiber *f = s->ready_head;
        s->ready_head = f->next;
        if (!s->ready_head)
            s->ready_tail = NULL;
        switch_in(s, f);
    }
}

/*
 * A round: the fibers back from away first (waiting for one when no flush is asked for), so that
 * what they park for joins this round's flushes; then the flushes, once nothing can run; then the
 * fibers they woke.
 */
/* Fibers parked that nothing will wake: a flush that forgot one. */
NORETURN static void stuck(const struct fiber_sched *s, const char *why)
{
    log_error("fiber: %d fibers parked and %s", s->parked, why);
    abort();
}

/* The flushes asked for so far, each once; fibers they wake may park again, for the next round. */
static void run_flushes(struct fiber_sched *s)
{
    void (*flush[FLUSH_MAX])(void *arg);
    void *flush_arg[FLUSH_MAX];
    const int n = s->nflush;

    for (int i = 0; i < n; i++) {
        flush[i] = s->flush[i];
        flush_arg[i] = s->flush_arg[i];
    }
    s->nflush = 0;
    for (int i = 0; i < n; i++)
        flush[i](flush_arg[i]);
}

void fiber_sched_settle(struct fiber_sched *s)
{
    while (s->parked > 0) {
        away_take_back(s, s->nflush == 0);
        run_ready(s);
        if (s->nflush > 0 && s->away > 0) {
            away_gather(s);
            away_take_back(s, false);
            run_ready(s);
        }
        if (s->nflush == 0) {
            if (s->parked > 0 && s->away == 0)
                stuck(s, "no flush asked for");
            continue;
        }
        run_flushes(s);
        if (!s->ready_head && s->away == 0)
            stuck(s, "no flush woke any");
        run_ready(s);
    }
}
