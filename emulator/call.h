/*
 * call.h: one /v1 call as the handlers see it (its parameters, its answer or its failure in
 * Stripe's terms) and the helpers that fill it. Below api.c and the handlers; uses the emulator
 * object (emu.h), objects.c and params.c.
 */
#ifndef SUBGATE_EMULATOR_CALL_H
#define SUBGATE_EMULATOR_CALL_H

#include <stdint.h>

#include <jansson.h>

#include "base/base.h"
#include "base/err.h"
#include "emu.h"
#include "params.h"

#define EMU_LIST_LIMIT_DEFAULT 10

struct emu_call {
    struct emu *app;
    struct request *req;
    json_t *params;      /* the decoded form: body (POST, DELETE) or query (GET) */
    char id[EMU_ID_MAX]; /* the path's id segment, "" when none */
    json_t *result;      /* the answer on success (owned) */
    int status;          /* of the answer; 200 unless a handler says otherwise */
    int err_status;      /* of a failure */
    const char *err_type;
    char err_code[64];
    char err_param[128];
    char err_message[512];
};

/* Records a failure in Stripe's terms (status and type from e) and returns e. */
enum err emu_call_fail(struct emu_call *c, enum err e, const char *code, const char *param,
                       const char *fmt, ...) PRINTF_LIKE(5, 6);

/* 404 resource_missing: "No such customer: 'cus_x'" (param NULL for a path id). */
enum err emu_call_missing(struct emu_call *c, const char *kind_name, const char *param,
                          const char *id);

/* Sets c->result to a copy of obj with the call's expand[] applied. */
void emu_call_answer(struct emu_call *c, const json_t *obj);

/*
 * Answers a list call: its limit (1-100, default 10) and its starting_after or ending_before
 * cursor; fails on a bad limit, on both cursors at once and on a cursor naming nothing.
 */
MUST_CHECK enum err emu_call_list(struct emu_call *c, enum emu_kind kind, const char *url,
                                  emu_match_fn match, const void *match_ctx);

#endif /* SUBGATE_EMULATOR_CALL_H */
