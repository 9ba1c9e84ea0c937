/*
 * events.c: webhook event bodies to billing_event. The envelope is read here; the objects
 * inside go through the readers of objects.c, the same ones that read API answers.
 */
#include "stripe/events.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "base/str.h"
#include "stripe/skim.h"

/*
 * Every member name the envelope and the object readers (objects.c) look at, at any depth. A
 * member named otherwise is checked but never built (skim.h). A reader that starts to use a new
 * member must add it here, in strcmp order (skim.h): the unit and fuzz tests compare both
 * parses over every fixture.
 */
static const char *const used_members[] = {
    "amount",
    "amount_due",
    "amount_paid",
    "cancel_at",
    "cancel_at_period_end",
    "canceled_at",
    "client_reference_id",
    "created",
    "currency",
    "current_period_end",
    "current_period_start",
    "current_phase",
    "customer",
    "data",
    "deleted",
    "email",
    "expires_at",
    "hosted_invoice_url",
    "id",
    "invoice",
    "invoice_pdf",
    "items",
    "latest_invoice",
    "metadata",
    "mode",
    "name",
    "number",
    "object",
    "parent",
    "payment_status",
    "pending_update",
    "period_end",
    "period_start",
    "phases",
    "price",
    "schedule",
    "start_date",
    "status",
    "subscription",
    "subscription_details",
    "subscription_items",
    "test_clock",
    "trial_end",
    "type",
    "url",
    "user_id",
};

static enum err envelope_fail(struct stripe_error *se, const char *field, const char *why)
{
    snprintf(se->message, sizeof(se->message), "malformed stripe event: '%s' %s", field, why);
    return ERR_INVALID;
}

/* A required string member that fits dst[size] and holds no NUL byte. */
static enum err envelope_str(const json_t *j, const char *key, char *dst, size_t size,
                             struct stripe_error *se)
{
    const json_t *v = json_object_get(j, key);
    const char *s = json_string_value(v);

    if (!s)
        return envelope_fail(se, key, v ? "is not a string" : "is missing");
    if (strlen(s) != json_string_length(v) || s[0] == '\0')
        return envelope_fail(se, key, "is empty or has a NUL byte");
    if (!str_copy(dst, size, s))
        return envelope_fail(se, key, "is too long");
    return ERR_OK;
}

static enum err read_envelope(const json_t *j, struct billing_event *ev, struct stripe_error *se)
{
    const json_t *created = json_object_get(j, "created");
    enum err err = envelope_str(j, "id", ev->id, sizeof(ev->id), se);

    if (!err)
        err = envelope_str(j, "type", ev->type, sizeof(ev->type), se);
    if (err)
        return err;
    if (!json_is_integer(created) || json_integer_value(created) < 0 ||
        json_integer_value(created) > BILLING_TIME_MAX)
        return envelope_fail(se, "created", "is not a time from 1970 to the year 9999");
    ev->created = (int64_t)json_integer_value(created);
    ev->kind = billing_event_kind_of(ev->type);
    return ERR_OK;
}

static enum err read_checkout(const json_t *obj, struct billing_event *ev, struct stripe_error *se)
{
    struct stripe_checkout_session cs;
    enum err err = stripe_checkout_session_from_json(obj, &cs, &ev->sub, se);

    if (err)
        return err;
    (void)str_copy(ev->customer_id, sizeof(ev->customer_id), cs.customer); /* same size */
    (void)str_copy(ev->user_id, sizeof(ev->user_id),
                   cs.client_reference_id[0] ? cs.client_reference_id : cs.user_id);
    (void)str_copy(ev->session_subscription, sizeof(ev->session_subscription), cs.subscription);
    (void)str_copy(ev->session_id, sizeof(ev->session_id), cs.id);
    ev->has_sub = cs.subscription_expanded;
    if (ev->has_sub && ev->sub.user_id[0] == '\0')
        (void)str_copy(ev->sub.user_id, sizeof(ev->sub.user_id), ev->user_id);
    return ERR_OK;
}

static enum err read_subscription(const json_t *obj, struct billing_event *ev,
                                  struct stripe_error *se)
{
    enum err err = stripe_subscription_from_json(obj, &ev->sub, se);

    if (err)
        return err;
    ev->has_sub = true;
    (void)str_copy(ev->customer_id, sizeof(ev->customer_id), ev->sub.stripe_customer_id);
    return ERR_OK;
}

static enum err read_invoice(const json_t *obj, struct billing_event *ev, struct stripe_error *se)
{
    struct stripe_invoice inv;
    enum err err = stripe_invoice_from_json(obj, &inv, se);

    if (err)
        return err;
    ev->invoice = inv.invoice;
    (void)str_copy(ev->customer_id, sizeof(ev->customer_id), inv.customer);
    return ERR_OK;
}

/* Stripe's name of the object an event of this kind carries ("object": "invoice" and so on). */
static const char *object_name(enum billing_event_kind kind)
{
    switch (kind) {
    case EVENT_CHECKOUT:
    case EVENT_CHECKOUT_EXPIRED:
        return "checkout.session";
    case EVENT_SUBSCRIPTION:
        return "subscription";
    case EVENT_INVOICE:
        return "invoice";
    case EVENT_SCHEDULE:
        return "subscription_schedule";
    case EVENT_IGNORED:
        break;
    }
    return "";
}

/*
 * data.object of a handled type must be an object, and when it says what it is, the kind the
 * type carries: an invoice read as a subscription would read as one without a price.
 */
static enum err check_object(const json_t *obj, const struct billing_event *ev,
                             struct stripe_error *se)
{
    const json_t *name = json_object_get(obj, "object");
    const char *want = object_name(ev->kind);

    if (!json_is_object(obj)) {
        snprintf(se->message, sizeof(se->message),
                 "malformed stripe event: 'data.object' is not an object");
        return ERR_UPSTREAM;
    }
    if (name && (!json_is_string(name) || strcmp(json_string_value(name), want) != 0)) {
        snprintf(se->message, sizeof(se->message),
                 "malformed stripe event: 'data.object' of a %s event has 'object' other than "
                 "'%s'",
                 ev->type, want);
        return ERR_UPSTREAM;
    }
    return ERR_OK;
}

static enum err read_object(const json_t *j, struct billing_event *ev, struct stripe_error *se)
{
    const json_t *obj = json_object_get(json_object_get(j, "data"), "object");
    enum err err = ERR_OK;

    if (ev->kind == EVENT_IGNORED)
        return ERR_OK;
    err = check_object(obj, ev, se);
    if (err)
        return err;
    switch (ev->kind) {
    case EVENT_CHECKOUT:
    case EVENT_CHECKOUT_EXPIRED:
        err = read_checkout(obj, ev, se);
        break;
    case EVENT_SUBSCRIPTION:
        err = read_subscription(obj, ev, se);
        break;
    case EVENT_INVOICE:
        err = read_invoice(obj, ev, se);
        break;
    case EVENT_SCHEDULE:
        err = stripe_schedule_from_json(obj, &ev->schedule, se);
        ev->schedule.stripe_updated = ev->created;
        break;
    case EVENT_IGNORED:
        break;
    }
    ev->sub.stripe_updated = ev->created;
    return err ? ERR_UPSTREAM : ERR_OK;
}

/* The event in j (consumed) to ev. */
static enum err event_from_json(json_t *j, struct billing_event *ev, struct stripe_error *se)
{
    const char *bad;
    enum err err = read_envelope(j, ev, se);

    if (!err)
        err = read_object(j, ev, se);
    json_decref(j);
    if (!err && (bad = billing_event_time_out_of_range(ev)) != NULL) {
        snprintf(se->message, sizeof(se->message),
                 "event '%s': %s is not a time from 1970 to the year 9999", ev->id, bad);
        err = ERR_INVALID; /* refused at the door, as a bad signature is: nothing recorded */
    }
    return err;
}

enum err stripe_event_parse(const char *body, size_t len, struct billing_event *ev,
                            struct stripe_error *se)
{
    char why[128];
    json_t *j =
        stripe_skim_parse(body, len, used_members, ARRAY_SIZE(used_members), why, sizeof(why));

    memset(ev, 0, sizeof(*ev));
    if (!j) {
        snprintf(se->message, sizeof(se->message), "malformed JSON from stripe %s", why);
        return ERR_INVALID;
    }
    return event_from_json(j, ev, se);
}

enum err stripe_event_parse_full(const char *body, size_t len, struct billing_event *ev,
                                 struct stripe_error *se)
{
    json_t *j = NULL;

    memset(ev, 0, sizeof(*ev));
    if (stripe_json_parse(body, len, &j, se) != ERR_OK)
        return ERR_INVALID;
    return event_from_json(j, ev, se);
}
