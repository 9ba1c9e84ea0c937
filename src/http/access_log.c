/*
 * access_log.c: the per-request log line. It is on the hot path, so it is built by hand in a
 * stack buffer: no allocation, no printf, and the timestamp formatted once per second per thread.
 */
#include "http/access_log.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/str.h"
#include "http/errors.h"

#define SECRET_SEGMENT_MIN 16 /* a path segment this long of token bytes, */
#define SECRET_DIGITS_MIN  4  /* with this many digits and a letter, is not logged */

struct line {
    char *p;   /* next byte to write */
    char *end; /* one byte is always kept free for the newline */
};

static void line_put(struct line *l, const char *s, size_t n)
{
    if (n > (size_t)(l->end - l->p))
        n = (size_t)(l->end - l->p);
    memcpy(l->p, s, n);
    l->p += n;
}

static void line_puts(struct line *l, const char *s)
{
    line_put(l, s, strlen(s));
}

/* Appends n bytes of s inside a JSON string; bytes outside printable ASCII become \u00XX. */
static void line_json_bytes(struct line *l, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < n && l->end - l->p > 8; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x7f) {
            char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
            line_put(l, esc, sizeof(esc));
        } else {
            *l->p++ = (char)c;
        }
    }
}

/* Appends s as a quoted JSON string. */
static void line_json_str(struct line *l, const char *s)
{
    line_put(l, "\"", 1);
    line_json_bytes(l, s, strlen(s));
    line_put(l, "\"", 1);
}

static void line_i64(struct line *l, int64_t v)
{
    char num[STR_I64_MAX];

    line_put(l, num, str_i64(num, v));
}

/* "2026-11-24T10:26:28Z" for now, cached per thread for the current second. */
static const char *log_time(void)
{
    static _Thread_local time_t cached = -1;
    static _Thread_local char when[32];
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (ts.tv_sec != cached) {
        gmtime_r(&ts.tv_sec, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        cached = ts.tv_sec;
    }
    return when;
}

/* A byte of a token's run: what JWTs, keys and their URL encodings are made of. */
static bool token_byte(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
           (c && strchr("-_.~+=%", c));
}

/*
 * True for a run of token bytes that may be a credential: a JWT, a service or Stripe key pasted
 * into a URL, wherever it sits in a segment (after ';', ':', a space, a quote...). Keys are at
 * least 16 bytes, random enough to hold several digits; words, route names and short ids pass.
 */
static bool run_may_be_secret(const char *s, size_t n)
{
    size_t digits = 0;
    bool alpha = false;

    if (n < SECRET_SEGMENT_MIN)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        digits += c >= '0' && c <= '9';
        alpha = alpha || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
    }
    return alpha && digits >= SECRET_DIGITS_MIN;
}

/*
 * Appends the first ACCESS_LOG_PATH_MAX bytes of path, quoted, each secret-like run of token
 * bytes cut (a run is judged whole, even where the limit cuts the path).
 */
static void line_path(struct line *l, const char *path)
{
    size_t len = strlen(path), max = len > ACCESS_LOG_PATH_MAX ? ACCESS_LOG_PATH_MAX : len;

    line_put(l, "\"", 1);
    for (size_t at = 0; at < max;) {
        size_t n = 0;
        while (token_byte((unsigned char)path[at + n]))
            n++;
        if (n == 0) {
            line_json_bytes(l, path + at, 1);
            at++;
            continue;
        }
        if (run_may_be_secret(path + at, n))
            line_puts(l, "[redacted]");
        else
            line_json_bytes(l, path + at, at + n > max ? max - at : n);
        at += n;
    }
    if (len > max)
        line_puts(l, "...");
    line_put(l, "\"", 1);
}

static enum log_level level_of(int status)
{
    return status >= 500 ? LOG_ERROR : status >= 400 ? LOG_WARN : LOG_INFO;
}

/* The error code of the answer's body ("" when the request did not fail). */
static const char *error_code(const struct request *req, int status)
{
    if (status < 400 || req->error.err == ERR_OK)
        return "";
    return req->error.code[0] ? req->error.code : err_http(req->error.err)->code;
}

static void line_outcome(struct line *l, const struct request *req, int status)
{
    const char *code = error_code(req, status);

    line_puts(l, ",\"status\":");
    line_i64(l, status);
    if (code[0]) {
        line_puts(l, ",\"code\":");
        line_json_str(l, code);
    }
    if (!req->route && status == 404) {
        line_puts(l, ",\"path\":");
        line_path(l, req->path);
    }
}

size_t access_log_format(const struct request *req, int status, char *buf)
{
    static const char *const level_names[] = { "debug", "info", "warn", "error" };
    struct line l = { buf, buf + ACCESS_LOG_LINE_MAX - 1 };

    line_puts(&l, "{\"time\":\"");
    line_puts(&l, log_time());
    line_puts(&l, "\",\"level\":\"");
    line_puts(&l, level_names[level_of(status)]);
    line_puts(&l, "\",\"request_id\":\"");
    line_puts(&l, req->id);
    line_puts(&l, "\",\"method\":");
    line_json_str(&l, req->method);
    line_puts(&l, ",\"route\":");
    if (req->route)
        line_json_str(&l, req->route);
    else
        line_puts(&l, "null");
    line_outcome(&l, req, status);
    line_puts(&l, ",\"latency_ms\":");
    line_i64(&l, clock_mono_ms() - req->start_ms);
    line_puts(&l, ",\"user\":");
    if (req->user[0])
        line_json_str(&l, req->user);
    else
        line_puts(&l, "null");
    line_puts(&l, "}");
    *l.p++ = '\n'; /* the byte kept free */
    return (size_t)(l.p - buf);
}

void access_log_write(const struct request *req, int status)
{
    char buf[ACCESS_LOG_LINE_MAX];

    if (level_of(status) < log_min_level)
        return;
    log_line(buf, access_log_format(req, status, buf));
}
