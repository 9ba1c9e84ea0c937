/*
 * dotenv.h: a pure parser of .env text (KEY=VALUE lines); config.c reads the file and decides
 * what the pairs mean.
 */
#ifndef SUBGATE_CONFIG_DOTENV_H
#define SUBGATE_CONFIG_DOTENV_H

#include <stddef.h>

#include "base/base.h"
#include "base/err.h"

#define DOTENV_MAX_BYTES ((size_t)1024 * 1024) /* the most .env text the file reader accepts */

/*
 * Receives one assignment. Both strings are NUL-terminated, hold no NUL byte and are borrowed
 * for the duration of the call only. Returning anything but ERR_OK stops the parse.
 */
typedef enum err (*dotenv_fn)(void *ctx, const char *key, const char *value);

/*
 * Parses <text, len> and calls fn(ctx, key, value) for each assignment, in order. The grammar,
 * one assignment per line:
 *   - blank lines and lines whose first non-blank byte is '#' are skipped;
 *   - an optional leading "export " is ignored;
 *   - the key matches [A-Za-z_][A-Za-z0-9_]*; spaces and tabs around '=' are trimmed;
 *   - an unquoted value is trimmed, and a '#' after a space or tab starts a comment;
 *   - a 'single-quoted' value is taken literally;
 *   - a "double-quoted" value understands \n \t \" and \\ (any other backslash is kept as
 *     written);
 *   - after a closing quote only blanks and a '#' comment may follow;
 *   - LF and CRLF line endings are both accepted; values never span lines.
 * Returns ERR_OK, or ERR_INVALID at the first malformed line (missing '=', bad key,
 * unterminated quote, a NUL byte, text after a closing quote), or whatever fn returned. On
 * failure *err_line is the 1-based line number and errmsg[errlen] holds a one-line reason that
 * never quotes a value (it is empty when fn failed); on success *err_line is 0.
 */
MUST_CHECK enum err dotenv_parse(const char *text, size_t len, dotenv_fn fn, void *ctx,
                                 int *err_line, char *errmsg, size_t errlen);

#endif /* SUBGATE_CONFIG_DOTENV_H */
