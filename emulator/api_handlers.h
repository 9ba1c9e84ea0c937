/*
 * api_handlers.h: the /v1 handlers (api_objects.c, api_billing.c) and their parameter tables,
 * as api.c's route table names them. Each handler fills a struct emu_call (call.h).
 */
#ifndef SUBGATE_EMULATOR_API_HANDLERS_H
#define SUBGATE_EMULATOR_API_HANDLERS_H

#include "base/err.h"
#include "call.h"
#include "params.h"

typedef enum err (*emu_api_fn)(struct emu_call *c);

/* Handlers (api_objects.c) and their parameter tables. */
extern const struct emu_param emu_p_customer_create[], emu_p_customer_update[],
    emu_p_customer_list[], emu_p_retrieve[], emu_p_price_list[], emu_p_session_create[],
    emu_p_session_list[], emu_p_portal_create[], emu_p_clock_create[], emu_p_clock_advance[],
    emu_p_clock_list[], emu_p_none[], emu_p_event_list[];
enum err emu_customer_create_h(struct emu_call *c);
enum err emu_customer_get_h(struct emu_call *c);
enum err emu_customer_update_h(struct emu_call *c);
enum err emu_customer_list_h(struct emu_call *c);
enum err emu_price_get_h(struct emu_call *c);
enum err emu_price_list_h(struct emu_call *c);
enum err emu_session_create_h(struct emu_call *c);
enum err emu_session_get_h(struct emu_call *c);
enum err emu_session_list_h(struct emu_call *c);
enum err emu_session_expire_h(struct emu_call *c);
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
    emu_p_invoice_list[], emu_p_charge_list[], emu_p_payment_intent_get[], emu_p_refund_create[],
    emu_p_refund_list[], emu_p_invoice_upcoming[], emu_p_schedule_create[], emu_p_schedule_update[],
    emu_p_schedule_release[], emu_p_promotion_code_list[], emu_p_invoice_pay[], emu_p_sub_resume[];
enum err emu_sub_get_h(struct emu_call *c);
enum err emu_sub_list_h(struct emu_call *c);
enum err emu_sub_update_h(struct emu_call *c);
enum err emu_sub_cancel_h(struct emu_call *c);
enum err emu_invoice_get_h(struct emu_call *c);
enum err emu_invoice_pay_h(struct emu_call *c);
enum err emu_sub_resume_h(struct emu_call *c);
enum err emu_invoice_list_h(struct emu_call *c);
enum err emu_charge_get_h(struct emu_call *c);
enum err emu_charge_list_h(struct emu_call *c);
enum err emu_payment_intent_get_h(struct emu_call *c);
enum err emu_refund_create_h(struct emu_call *c);
enum err emu_refund_get_h(struct emu_call *c);
enum err emu_refund_list_h(struct emu_call *c);
enum err emu_invoice_upcoming_h(struct emu_call *c);
enum err emu_schedule_create_h(struct emu_call *c);
enum err emu_schedule_get_h(struct emu_call *c);
enum err emu_schedule_update_h(struct emu_call *c);
enum err emu_schedule_release_h(struct emu_call *c);
enum err emu_promotion_code_list_h(struct emu_call *c);
enum err emu_promotion_code_get_h(struct emu_call *c);
enum err emu_coupon_get_h(struct emu_call *c);

#endif /* SUBGATE_EMULATOR_API_HANDLERS_H */
