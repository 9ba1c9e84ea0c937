/*
 * emu_proc.h: the Stripe emulator as a child process for C integration tests: start it from
 * $EMULATOR_BIN on a free loopback port, call its control API, stop it. Header-only, like t.h.
 */
#ifndef SUBGATE_TESTS_EMU_PROC_H
#define SUBGATE_TESTS_EMU_PROC_H

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "base/base.h"
#include "base/buf.h"

#define EMU_TEST_KEY "sk_test_integration_0123456789"

struct emu_proc {
    pid_t pid;
    int out_fd; /* the child's stdout, drained by a thread after the first line */
    pthread_t drainer;
    char base[64]; /* http://127.0.0.1:PORT */
};

static void *emu_drain(void *p)
{
    struct emu_proc *e = p;
    char sink[4096];

    while (read(e->out_fd, sink, sizeof(sink)) > 0)
        ;
    return NULL;
}

/* Reads the first stdout line (10 s at most) into line[size]. */
static bool emu_first_line(int fd, char *line, size_t size)
{
    size_t n = 0;
    struct pollfd pfd = { .fd = fd, .events = POLLIN };

    while (n + 1 < size && poll(&pfd, 1, 10000) == 1) {
        if (read(fd, &line[n], 1) != 1)
            break;
        if (line[n] == '\n')
            break;
        n++;
    }
    line[n] = '\0';
    return n > 0;
}

/* Starts $EMULATOR_BIN; false (with a reason in why) when it is missing or does not start. */
static bool emu_start(struct emu_proc *e, char *why, size_t whylen)
{
    const char *bin = getenv("EMULATOR_BIN");
    char line[256];
    const char *url;
    int fds[2];

    memset(e, 0, sizeof(*e));
    if (!bin || access(bin, X_OK) != 0) {
        snprintf(why, whylen, "no emulator binary at EMULATOR_BIN='%s'", bin ? bin : "");
        return false;
    }
    if (pipe(fds) != 0)
        return false;
    e->pid = fork();
    if (e->pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        setenv("EMULATOR_LISTEN", "127.0.0.1:0", 1);
        setenv("EMULATOR_SECRET_KEY", EMU_TEST_KEY, 1);
        execl(bin, bin, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    e->out_fd = fds[0];
    url = emu_first_line(e->out_fd, line, sizeof(line)) ? strstr(line, "http://") : NULL;
    if (e->pid < 0 || !url) {
        snprintf(why, whylen, "the emulator did not say where it listens ('%.150s')", line);
        return false;
    }
    snprintf(e->base, sizeof(e->base), "%s", url);
    pthread_create(&e->drainer, NULL, emu_drain, e);
    return true;
}

static void emu_stop(struct emu_proc *e)
{
    if (e->pid <= 0)
        return;
    kill(e->pid, SIGTERM);
    waitpid(e->pid, NULL, 0);
    if (e->drainer)
        pthread_join(e->drainer, NULL);
    close(e->out_fd);
    e->pid = 0;
}

static size_t emu_collect(char *p, size_t size, size_t n, void *ud)
{
    return buf_append(ud, p, size * n) == ERR_OK ? size * n : 0;
}

/*
 * One plain HTTP call to the emulator (control API, hosted pages, raw /v1 reads): method,
 * path, body (NULL: none) of content type ctype. Returns the status (0 on failure); the answer
 * goes into out (may be NULL).
 */
static long emu_http(const struct emu_proc *e, const char *method, const char *path,
                     const char *ctype, const char *body, struct buf *out)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = NULL;
    struct buf sink;
    char url[512], line[128];
    long status = 0;

    buf_init(&sink, 1 << 24);
    snprintf(url, sizeof(url), "%s%s", e->base, path);
    snprintf(line, sizeof(line), "Content-Type: %s", ctype ? ctype : "application/json");
    hdr = curl_slist_append(hdr, line);
    hdr = curl_slist_append(hdr, "Authorization: Bearer " EMU_TEST_KEY);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, emu_collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out ? out : &sink);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
    if (body)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    buf_release(&sink);
    return status;
}

static bool emu_reset(const struct emu_proc *e)
{
    return emu_http(e, "POST", "/_emulator/reset", NULL, "{}", NULL) == 200;
}

/* Makes the next count /v1 requests fail with mode ("500", "429", "timeout", "drop"). */
static bool emu_faults(const struct emu_proc *e, const char *mode, int count, int delay_ms)
{
    char body[128];

    snprintf(body, sizeof(body), "{\"mode\":\"%s\",\"count\":%d,\"delay_ms\":%d}", mode, count,
             delay_ms);
    return emu_http(e, "POST", "/_emulator/faults", NULL, body, NULL) == 200;
}

#endif /* SUBGATE_TESTS_EMU_PROC_H */
