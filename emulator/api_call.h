/*
 * api_call.h: what the /v1 handlers share with the dispatcher in api.c: the call they fill, the
 * failure helper, and the handlers and parameter tables the route table names.
 */
#ifndef SUBGATE_EMULATOR_API_CALL_H
#define SUBGATE_EMULATOR_API_CALL_H

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

typedef enum err (*emu_api_fn)(struct emu_call *c);

/* Records a failure in Stripe's terms (status and type from e) and returns e. */
enum err emu_call_fail(struct emu_call *c, enum err e, const char *code, const char *param,
                       const char *fmt, ...) PRINTF_LIKE(5, 6);

/* 404 resource_missing: "No such customer: 'cus_x'" (param NULL for a path id). */
enum err emu_call_missing(struct emu_call *c, const char *kind_name, const char *param,
                          const char *id);

/* Sets c->result to a copy of obj with the call's expand[] applied. */
void emu_call_answer(struct emu_call *c, const json_t *obj);

/* The call's list limit (1-100, default 10) and starting_after; fails on a bad limit. */
MUST_CHECK enum err emu_call_list(struct emu_call *c, enum emu_kind kind, const char *url,
                                  emu_match_fn match, const void *match_ctx);

/* Handlers (api_objects.c) and their parameter tables. */
extern const struct emu_param emu_p_customer_create[], emu_p_customer_update[],
    emu_p_customer_list[], emu_p_retrieve[], emu_p_price_list[], emu_p_session_create[],
    emu_p_portal_create[], emu_p_clock_create[], emu_p_clock_advance[], emu_p_clock_list[],
    emu_p_none[], emu_p_event_list[];
enum err emu_customer_create_h(struct emu_call *c);
enum err emu_customer_get_h(struct emu_call *c);
enum err emu_customer_update_h(struct emu_call *c);
enum err emu_customer_list_h(struct emu_call *c);
enum err emu_price_get_h(struct emu_call *c);
enum err emu_price_list_h(struct emu_call *c);
enum err emu_session_create_h(struct emu_call *c);
enum err emu_session_get_h(struct emu_call *c);
enum err emu_portal_create_h(struct emu_call *c);
enum err emu_clock_create_h(struct emu_call *c);
enum err emu_clock_get_h(struct emu_call *c);
enum err emu_clock_list_h(struct emu_call *c);
enum err emu_clock_advance_h(struct emu_call *c);
enum err emu_clock_delete_h(struct emu_call *c);
enum err emu_event_get_h(struct emu_call *c);
enum err emu_event_list_h(struct emu_call *c);

/* Handlers (api_billing.c) and their parameter tables. */
extern const struct emu_param emu_p_sub_list[], emu_p_sub_update[], emu_p_sub_cancel[],
    emu_p_invoice_list[];
enum err emu_sub_get_h(struct emu_call *c);
enum err emu_sub_list_h(struct emu_call *c);
enum err emu_sub_update_h(struct emu_call *c);
enum err emu_sub_cancel_h(struct emu_call *c);
enum err emu_invoice_get_h(struct emu_call *c);
enum err emu_invoice_list_h(struct emu_call *c);

#endif /* SUBGATE_EMULATOR_API_CALL_H */
