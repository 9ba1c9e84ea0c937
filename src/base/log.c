/* log.c: one line per message, JSON-shaped, written with a single write(2) so lines never mix. */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"

enum log_level log_min_level = LOG_INFO;

static const char *const level_names[] = { "debug", "info", "warn", "error", "off" };

int log_level_parse(const char *s)
{
    for (size_t i = 0; i < ARRAY_SIZE(level_names); i++)
        if (strcmp(s, level_names[i]) == 0)
            return (int)i;
    return -1;
}

void log_line(const char *line, size_t len)
{
    ssize_t n = write(STDERR_FILENO, line, len);

    (void)n; /* nowhere left to report a failed log write */
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
