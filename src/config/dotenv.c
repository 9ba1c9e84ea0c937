/* dotenv.c: the .env line grammar; no I/O, one scratch buffer that is wiped before it is freed. */
#include "config/dotenv.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/str.h"
#include "base/xalloc.h"

/* One line under parse: the bytes still unread and where the decoded strings go. */
struct line {
    const char *p;     /* unread bytes of the line, without its line ending */
    size_t n;          /* how many */
    char *out;         /* scratch: the key, a NUL, then the value and a NUL */
    const char *key;   /* NULL for a blank or comment line */
    const char *value; /* set once the key was */
    char *msg;         /* the caller's error message buffer */
    size_t msglen;
};

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_key_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_key_char(char c)
{
    return is_key_start(c) || (c >= '0' && c <= '9');
}

static void advance(struct line *ln, size_t k)
{
    ln->p += k;
    ln->n -= k;
}

static void skip_blanks(struct line *ln)
{
    while (ln->n > 0 && is_blank(ln->p[0]))
        advance(ln, 1);
}

static enum err fail(struct line *ln, const char *why)
{
    snprintf(ln->msg, ln->msglen, "%s", why);
    return ERR_INVALID;
}

/* Appends <p, n> and a NUL to the scratch buffer; returns where the copy starts. */
static const char *emit(struct line *ln, const char *p, size_t n)
{
    char *start = ln->out;

    memcpy(start, p, n);
    start[n] = '\0';
    ln->out += n + 1;
    return start;
}

static void skip_export(struct line *ln)
{
    if (ln->n > 6 && memcmp(ln->p, "export", 6) == 0 && is_blank(ln->p[6])) {
        advance(ln, 6);
        skip_blanks(ln);
    }
}

static enum err parse_key(struct line *ln)
{
    size_t k = 0;

    if (ln->n == 0 || !is_key_start(ln->p[0]))
        return fail(ln, "expected KEY=VALUE, with a key of letters, digits and '_'");
    while (k < ln->n && is_key_char(ln->p[k]))
        k++;
    ln->key = emit(ln, ln->p, k);
    advance(ln, k);
    if (ln->n > 0 && !is_blank(ln->p[0]) && ln->p[0] != '=')
        return fail(ln, "invalid key: only letters, digits and '_' may come before '='");
    skip_blanks(ln);
    /* Not quoted: a value pasted on a line of its own (a wrapped key) looks like a key. */
    if (ln->n == 0 || ln->p[0] != '=')
        return fail(ln, "missing '=' after the key (not shown: it may be a pasted value)");
    advance(ln, 1);
    return ERR_OK;
}

static enum err after_quote(struct line *ln)
{
    skip_blanks(ln);
    if (ln->n > 0 && ln->p[0] != '#')
        return fail(ln, "unexpected text after the closing quote");
    return ERR_OK;
}

static enum err single_quoted(struct line *ln)
{
    const char *end = memchr(ln->p + 1, '\'', ln->n - 1);
    size_t k;

    if (!end)
        return fail(ln, "unterminated single quote");
    k = (size_t)(end - (ln->p + 1));
    ln->value = emit(ln, ln->p + 1, k);
    advance(ln, k + 2);
    return after_quote(ln);
}

/* The byte an escape stands for, or 0 when the backslash is kept as written. */
static char unescape(char c)
{
    switch (c) {
    case 'n':
        return '\n';
    case 't':
        return '\t';
    case '"':
    case '\\':
        return c;
    default:
        return 0;
    }
}

static enum err double_quoted(struct line *ln)
{
    char *d = ln->out;
    size_t i = 1;

    while (i < ln->n && ln->p[i] != '"') {
        char e = 0;

        if (ln->p[i] == '\\' && i + 1 < ln->n)
            e = unescape(ln->p[i + 1]);
        if (e) {
            *d++ = e;
            i += 2;
        } else {
            *d++ = ln->p[i++];
        }
    }
    if (i >= ln->n)
        return fail(ln, "unterminated double quote");
    *d = '\0';
    ln->value = ln->out;
    ln->out = d + 1;
    advance(ln, i + 1);
    return after_quote(ln);
}

/* A '#' after a blank starts a comment, as in the shell; "a#b" keeps its '#'. */
static void unquoted(struct line *ln)
{
    const char *v = ln->p;
    size_t k = 0;

    while (k < ln->n && !(ln->p[k] == '#' && k > 0 && is_blank(ln->p[k - 1])))
        k++;
    str_trim(&v, &k);
    ln->value = emit(ln, v, k);
}

static enum err parse_value(struct line *ln)
{
    struct line raw = *ln;

    skip_blanks(ln);
    if (ln->n > 0 && ln->p[0] == '\'')
        return single_quoted(ln);
    if (ln->n > 0 && ln->p[0] == '"')
        return double_quoted(ln);
    unquoted(&raw);
    ln->value = raw.value;
    return ERR_OK;
}

static enum err parse_line(struct line *ln)
{
    enum err err;

    if (ln->n > 0 && ln->p[ln->n - 1] == '\r')
        ln->n--;
    if (memchr(ln->p, '\0', ln->n))
        return fail(ln, "NUL byte in the line");
    skip_blanks(ln);
    if (ln->n == 0 || ln->p[0] == '#')
        return ERR_OK;
    skip_export(ln);
    err = parse_key(ln);
    if (err)
        return err;
    return parse_value(ln);
}

enum err dotenv_parse(const char *text, size_t len, dotenv_fn fn, void *ctx, int *err_line,
                      char *errmsg, size_t errlen)
{
    char *scratch = xmalloc(len + 2); /* a line's key and value never outgrow the line */
    enum err err = ERR_OK;
    size_t pos = 0;
    int line = 0;

    if (errlen)
        errmsg[0] = '\0';
    while (pos < len && !err) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        struct line ln = { .p = text + pos,
                           .n = end - pos,
                           .out = scratch,
                           .msg = errmsg,
                           .msglen = errlen };

        if (line < INT_MAX)
            line++;
        err = parse_line(&ln);
        if (!err && ln.key)
            err = fn(ctx, ln.key, ln.value);
        pos = end + 1;
    }
    *err_line = err ? line : 0;
    explicit_bzero(scratch, len + 2); /* the values are often secrets */
    free(scratch);
    return err;
}
