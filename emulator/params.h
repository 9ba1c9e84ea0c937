/*
 * params.h: what each emulated endpoint accepts, as tables, and the check Stripe makes before
 * anything runs: unknown parameters, missing required ones, wrong types, values outside an enum.
 * Pure.
 */
#ifndef SUBGATE_EMULATOR_PARAMS_H
#define SUBGATE_EMULATOR_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/base.h"
#include "base/err.h"

enum emu_param_kind {
    EP_STRING,   /* a string (choices, when set, lists the valid values: "a|b|c") */
    EP_INT,      /* a base-10 integer */
    EP_BOOL,     /* "true" or "false" */
    EP_METADATA, /* an object of string values, or "" (unset) */
    EP_STRINGS,  /* an array of strings (expand[]) */
    EP_OBJECT,   /* an object with the listed fields */
    EP_OBJECTS,  /* an array of objects with the listed fields (line_items[0][price]) */
    EP_ANY,      /* documented, not emulated: accepted whatever its shape */
};

struct emu_param {
    const char *name; /* NULL ends a table */
    enum emu_param_kind kind;
    bool required;
    const struct emu_param *fields; /* EP_OBJECT, EP_OBJECTS */
    const char *choices;            /* EP_STRING: "a|b|c", NULL for any */
};

struct emu_param_error {
    char param[128];   /* "line_items[0][foo]" */
    char message[256]; /* "Received unknown parameter: line_items[0][foo]" */
};

/* Checks a decoded form (form.h) against a NULL-terminated table. ERR_INVALID with *e filled. */
MUST_CHECK enum err emu_params_check(const struct emu_param *spec, json_t *params,
                                     struct emu_param_error *e);

/* The string at key, or NULL when absent or not a string. Borrowed. */
const char *emu_param_str(const json_t *obj, const char *key);

/* The integer at key (checked already); false when absent. */
bool emu_param_int(const json_t *obj, const char *key, int64_t *out);

/* The boolean at key (checked already); false when absent. */
bool emu_param_bool(const json_t *obj, const char *key, bool *out);

#endif /* SUBGATE_EMULATOR_PARAMS_H */
