/*
 * fuzz_dotenv.c: libFuzzer target for config/dotenv. Every pair handed to the callback must have
 * a key of the grammar and a NUL-terminated value; errors must name a line of the input; and the
 * pairs whose value can be single-quoted must read back the same after being written out again.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "base/buf.h"
#include "config/dotenv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
    size_t size;         /* of the input: no value can be longer */
    size_t calls;        /* pairs handed over */
    struct buf pairs;    /* "KEY=VALUE\n" of each pair that can be written back */
    struct buf rewrite;  /* the same pairs as KEY='VALUE' lines */
    struct buf reparsed; /* what the rewrite parses to, in the pairs format */
    bool overflow;       /* a buffer hit its cap: skip the round trip */
};

static bool key_ok(const char *k)
{
    if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || *k == '_'))
        return false;
    for (k++; *k; k++)
        if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') ||
              *k == '_'))
            return false;
    return true;
}

static enum err first_pass(void *ctx, const char *key, const char *value)
{
    struct seen *s = ctx;

    if (!key_ok(key) || strlen(key) > s->size || strlen(value) > s->size)
        __builtin_trap();
    s->calls++;
    if (strchr(value, '\'') || strchr(value, '\n'))
        return ERR_OK; /* cannot be single-quoted on one line */
    if (buf_appendf(&s->pairs, "%s=%s\n", key, value) != ERR_OK ||
        buf_appendf(&s->rewrite, "%s='%s'\n", key, value) != ERR_OK)
        s->overflow = true;
    return ERR_OK;
}

static enum err second_pass(void *ctx, const char *key, const char *value)
{
    struct seen *s = ctx;

    if (buf_appendf(&s->reparsed, "%s=%s\n", key, value) != ERR_OK)
        s->overflow = true;
    return ERR_OK;
}

static size_t count_lines(const uint8_t *data, size_t size)
{
    size_t n = 1;

    for (size_t i = 0; i < size; i++)
        n += data[i] == '\n';
    return n;
}

static void round_trip(struct seen *s)
{
    char msg[128];
    int line = -1;

    if (s->overflow)
        return;
    if (dotenv_parse(buf_str(&s->rewrite), s->rewrite.len, second_pass, s, &line, msg,
                     sizeof(msg)) != ERR_OK)
        __builtin_trap();
    if (!s->overflow && strcmp(buf_str(&s->pairs), buf_str(&s->reparsed)) != 0)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct seen s = { .size = size };
    char msg[128];
    int line = -1;
    size_t lines = count_lines(data, size);

    if (size > DOTENV_MAX_BYTES)
        return 0;
    buf_init(&s.pairs, 2 * size + 64);
    buf_init(&s.rewrite, 2 * size + 64);
    buf_init(&s.reparsed, 2 * size + 64);
    enum err e = dotenv_parse((const char *)data, size, first_pass, &s, &line, msg, sizeof(msg));
    if (e == ERR_OK && (line != 0 || s.calls > lines))
        __builtin_trap();
    if (e != ERR_OK && (e != ERR_INVALID || line < 1 || (size_t)line > lines || !msg[0]))
        __builtin_trap();
    if (e == ERR_OK)
        round_trip(&s);
    buf_release(&s.pairs);
    buf_release(&s.rewrite);
    buf_release(&s.reparsed);
    return 0;
}
