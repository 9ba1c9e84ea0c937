/*
 * test_log.c: buffered log lines (base/log.h). Between log_start() and log_stop() every line
 * is written whole, in its thread's order, and none is lost: not when a thread's buffer fills,
 * not when a thread ends, not at the stop; after the stop lines are written at once again.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "t.h"

#define THREADS 6
#define LINES   5000 /* x ~60 bytes: several buffers' worth per thread */

/* Points stderr at a fresh temporary file; returns the saved descriptor to restore. */
static int capture(FILE **f)
{
    int saved = dup(STDERR_FILENO);

    *f = tmpfile();
    if (!*f || saved < 0)
        return -1;
    dup2(fileno(*f), STDERR_FILENO);
    return saved;
}

static char *release(FILE *f, int saved, size_t *len)
{
    long n;
    char *text;

    dup2(saved, STDERR_FILENO);
    close(saved);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    text = calloc(1, (size_t)n + 1);
    *len = fread(text, 1, (size_t)n, f);
    fclose(f);
    return text;
}

static void *writer(void *arg)
{
    int id = (int)(intptr_t)arg;
    char line[128];

    for (int i = 0; i < LINES; i++) {
        int n = snprintf(line, sizeof(line), "{\"thread\":%d,\"seq\":%d,\"pad\":\"%s\"}\n", id, i,
                         "xxxxxxxxxxxxxxxxxxxxxxxx");
        log_line(line, (size_t)n);
    }
    return NULL;
}

/* Every line whole, each thread's lines all there and in order. */
static void check_lines(const char *text, int threads)
{
    int next[THREADS] = { 0 };
    int whole = 0, broken = 0;

    for (const char *p = text; *p;) {
        const char *end = strchr(p, '\n');
        int id, seq;
        if (!end)
            break;
        if (sscanf(p, "{\"thread\":%d,\"seq\":%d,", &id, &seq) == 2 && id >= 0 && id < threads &&
            end[-1] == '}' && seq == next[id]) {
            next[id]++;
            whole++;
        } else {
            broken++;
        }
        p = end + 1;
    }
    T_EQ_I64(broken, 0, "no line cut, mixed or out of its thread's order");
    T_EQ_I64(whole, threads * LINES, "every line of every thread is there");
}

static void test_threads_and_stop(void)
{
    FILE *f;
    int saved = capture(&f);
    pthread_t t[THREADS];
    size_t len;
    char *text;

    T_OK(saved >= 0, "stderr captured");
    T_OK(log_start(), "the log thread starts");
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL); /* these threads end with lines maybe still buffered */
    log_stop();
    text = release(f, saved, &len);
    check_lines(text, THREADS);
    free(text);
}

static void test_buffered_until_drained(void)
{
    FILE *f;
    int saved = capture(&f);
    size_t len;
    char *text;
    const char *line = "{\"thread\":0,\"seq\":0,\"pad\":\"late\"}\n";

    T_OK(log_start(), "the log thread starts again");
    log_line(line, strlen(line));
    usleep(200 * 1000); /* many drain periods */
    log_stop();
    log_line("{\"after\":\"stop\"}\n", 17); /* written at once */
    text = release(f, saved, &len);
    T_OK(strstr(text, "\"late\"") != NULL, "a lone line is written by the log thread");
    T_OK(strstr(text, "{\"after\":\"stop\"}\n") != NULL,
         "a line after the stop is written at once");
    free(text);
}

int main(void)
{
    test_threads_and_stop();
    test_buffered_until_drained();
    return t_done();
}
