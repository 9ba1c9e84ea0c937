/*
 * jw.h: a JSON writer for small answers of a fixed shape (check, consume, usage, gate): the
 * text is appended as the values come, with no tree, and is byte for byte what jansson's
 * json_dumps(JSON_COMPACT) writes for the same object built in the same key order (escapes
 * included: \" \\ \b \f \n \r \t, other controls as \u00XX, everything else as it is).
 */
#ifndef SUBGATE_BASE_JW_H
#define SUBGATE_BASE_JW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "base/buf.h"

#define JW_DEPTH_MAX 8

struct jw {
    struct buf b;
    int depth;
    bool first[JW_DEPTH_MAX]; /* no member written yet at this depth */
    bool bad;                 /* a string was not UTF-8, too deep, or the cap was hit */
};

/* Starts a document: its outer object is open. */
void jw_begin(struct jw *w);

/* Opens the object member key (NULL inside an array is not supported: objects only). */
void jw_object(struct jw *w, const char *key);

/* Closes the innermost open object. */
void jw_end(struct jw *w);

/* Members. A NULL string value is written as null. */
void jw_str(struct jw *w, const char *key, const char *value);
void jw_i64(struct jw *w, const char *key, int64_t value);
void jw_bool(struct jw *w, const char *key, bool value);
void jw_null(struct jw *w, const char *key);

/*
 * Closes what is open and hands over the text (free with free()) and its length; NULL (and
 * nothing to free) when a string was not well-formed UTF-8 or held a NUL, as json_string()
 * would refuse it.
 */
char *jw_finish(struct jw *w, size_t *len);

#endif /* SUBGATE_BASE_JW_H */
