/*
 * form.h: the emulator's decoder of Stripe's wire format, application/x-www-form-urlencoded with
 * bracket notation (line_items[0][price]=p&expand[]=x), into a jansson tree of objects, arrays
 * and strings. Pure; capped in depth, pair count and key length.
 */
#ifndef SUBGATE_EMULATOR_FORM_H
#define SUBGATE_EMULATOR_FORM_H

#include <stddef.h>

#include <jansson.h>

#include "base/base.h"
#include "base/buf.h"
#include "base/err.h"

#define EMU_FORM_MAX_DEPTH 6    /* segments in one key: a[b][c][d][e][f] */
#define EMU_FORM_MAX_PAIRS 1000 /* key=value pairs in one request */
#define EMU_FORM_MAX_KEY   512  /* bytes of one decoded key */
#define EMU_FORM_MAX_INDEX 1000 /* an array index past this is refused */
#define EMU_FORM_ERROR_MAX 256

struct emu_form {
    json_t *root;                   /* the decoded object; owned, released by emu_form_release */
    size_t pairs;                   /* pairs added so far */
    char error[EMU_FORM_ERROR_MAX]; /* Stripe-style message of the last failure */
};

/* Sets up an empty form (root = {}). */
void emu_form_init(struct emu_form *f);

/* Frees the tree; the form must be initialised again before reuse. */
void emu_form_release(struct emu_form *f);

/*
 * Adds one already-decoded pair: key in bracket notation, value a string (NULL = ""). Arrays are
 * "a[]" (append) or "a[N]" (N at most the current length). ERR_INVALID with f->error set on a
 * malformed key, a type conflict (a=1&a[b]=2), invalid UTF-8, or a cap.
 */
MUST_CHECK enum err emu_form_add(struct emu_form *f, const char *key, const char *value);

/* Decodes a whole urlencoded body ('+' is a space, %XX a byte) and adds each pair. */
MUST_CHECK enum err emu_form_parse(struct emu_form *f, const char *body, size_t len);

/* Appends key=value percent-encoded (a '&' first when b is not empty). */
MUST_CHECK enum err emu_form_encode_pair(struct buf *b, const char *key, const char *value);

#endif /* SUBGATE_EMULATOR_FORM_H */
