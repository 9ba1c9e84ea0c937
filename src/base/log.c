/*
 * log.c: one line per message, JSON-shaped. Lines are whole in every write(2), so they never
 * mix. Once log_start() has run (the server), a thread's lines go to its own buffer, which a
 * log thread writes out every LOG_DRAIN_MS: the request path makes no system call for its
 * line. A full buffer is written by its own thread (its lines stay in order); log_stop() writes
 * out what is left, and lines after it are written at once again.
 */
#include "base/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/xalloc.h"

#define LOG_BUF_BYTES ((size_t)64 * 1024) /* a thread's buffer: ~300 request lines */
#define LOG_DRAIN_MS  10

/* A thread's buffer, in the list from its first line; an ended thread's is freed once empty. */
struct log_buf {
    pthread_mutex_t mu; /* guards len, data, ended */
    struct log_buf *next;
    size_t len;
    bool ended; /* its thread has ended */
    char data[LOG_BUF_BYTES];
};

static struct {
    pthread_mutex_t mu; /* guards bufs, stop */
    pthread_cond_t wake;
    struct log_buf *bufs;
    pthread_t thread;
    pthread_key_t key; /* its destructor marks a thread's buffer ended */
    bool stop;
    _Atomic bool running; /* lines are buffered */
} lg = { .mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER };

static _Thread_local struct log_buf *my_buf;

enum log_level log_min_level = LOG_INFO;

static const char *const level_names[] = { "debug", "info", "warn", "error", "off" };

int log_level_parse(const char *s)
{
    for (size_t i = 0; i < ARRAY_SIZE(level_names); i++)
        if (strcmp(s, level_names[i]) == 0)
            return (int)i;
    return -1;
}

/* Writes all of p, going on after a short write or a signal; gives up on any other error. */
static void write_out(const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* nowhere left to report a failed log write */
        p += n;
        len -= (size_t)n;
    }
}

static void thread_ended(void *arg)
{
    struct log_buf *b = arg;

    pthread_mutex_lock(&b->mu);
    b->ended = true;
    pthread_mutex_unlock(&b->mu);
}

static struct log_buf *buf_of_this_thread(void)
{
    struct log_buf *b = my_buf;

    if (b)
        return b;
    b = xcalloc(1, sizeof(*b));
    pthread_mutex_init(&b->mu, NULL);
    pthread_mutex_lock(&lg.mu);
    b->next = lg.bufs;
    lg.bufs = b;
    pthread_mutex_unlock(&lg.mu);
    (void)pthread_setspecific(lg.key, b);
    my_buf = b;
    return b;
}

void log_line(const char *line, size_t len)
{
    struct log_buf *b;

    if (!atomic_load(&lg.running)) {
        write_out(line, len);
        return;
    }
    b = buf_of_this_thread();
    pthread_mutex_lock(&b->mu);
    if (!atomic_load(&lg.running) || b->len + len > sizeof(b->data)) {
        write_out(b->data, b->len); /* what is buffered first: the thread's lines keep order */
        b->len = 0;
    }
    if (atomic_load(&lg.running) && len <= sizeof(b->data)) {
        memcpy(b->data + b->len, line, len);
        b->len += len;
    } else {
        write_out(line, len);
    }
    pthread_mutex_unlock(&b->mu);
}

/* Writes out every buffer and frees those of ended threads. Called with lg.mu held. */
static void drain_all(char *scratch)
{
    struct log_buf **link = &lg.bufs;

    while (*link) {
        struct log_buf *b = *link;
        size_t n;
        bool ended;

        pthread_mutex_lock(&b->mu);
        n = b->len;
        memcpy(scratch, b->data, n);
        b->len = 0;
        ended = b->ended;
        pthread_mutex_unlock(&b->mu);
        write_out(scratch, n);
        if (ended) {
            *link = b->next;
            pthread_mutex_destroy(&b->mu);
            free(b);
        } else {
            link = &b->next;
        }
    }
}

static void *drain_main(void *arg)
{
    char *scratch = arg;
    struct timespec until;

    pthread_mutex_lock(&lg.mu);
    while (!lg.stop) {
        drain_all(scratch);
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += LOG_DRAIN_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&lg.wake, &lg.mu, &until);
    }
    pthread_mutex_unlock(&lg.mu);
    return NULL;
}

static char *drain_scratch;
static bool atexit_set;

bool log_start(void)
{
    if (atomic_load(&lg.running))
        return true;
    if (pthread_key_create(&lg.key, thread_ended) != 0)
        return false;
    drain_scratch = xmalloc(LOG_BUF_BYTES);
    lg.stop = false;
    if (pthread_create(&lg.thread, NULL, drain_main, drain_scratch) != 0) {
        free(drain_scratch);
        drain_scratch = NULL;
        (void)pthread_key_delete(lg.key);
        return false;
    }
    atomic_store(&lg.running, true);
    if (!atexit_set)
        atexit_set = atexit(log_stop) == 0; /* an exit() elsewhere loses no line either */
    return true;
}

void log_stop(void)
{
    if (!atomic_load(&lg.running))
        return;
    atomic_store(&lg.running, false); /* a line from now on is written at once */
    pthread_mutex_lock(&lg.mu);
    lg.stop = true;
    pthread_cond_signal(&lg.wake);
    pthread_mutex_unlock(&lg.mu);
    pthread_join(lg.thread, NULL);
    pthread_mutex_lock(&lg.mu);
    drain_all(drain_scratch); /* each buffer is taken under its lock: no line slips past */
    pthread_mutex_unlock(&lg.mu);
    free(drain_scratch);
    drain_scratch = NULL;
}

/* Appends s as the inside of a JSON string: quotes, backslashes and controls escaped. */
static void append_escaped(struct buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        enum err err;
        if (c == '"' || c == '\\')
            err = buf_appendf(b, "\\%c", c);
        else if (c < 0x20)
            err = buf_appendf(b, "\\u%04x", c);
        else
            err = buf_append(b, s, 1);
        if (err)
            return; /* capped: the message is cut, never the line structure */
    }
}

void log_write(enum log_level lvl, const char *file, int line, const char *fmt, ...)
{
    char msg[1024];
    struct buf b;
    va_list ap;
    struct timespec ts;
    struct tm tm;
    char when[32];

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    buf_init(&b, 8192); /* > 6 x sizeof(msg): escaping can never cut the line */
    (void)!buf_appendf(&b, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"", when, level_names[lvl]);
    append_escaped(&b, msg);
    if (lvl == LOG_DEBUG)
        (void)!buf_appendf(&b, "\",\"at\":\"%s:%d", file, line);
    (void)!buf_puts(&b, "\"}\n");
    log_line(b.data, b.len);
    buf_release(&b);
}
