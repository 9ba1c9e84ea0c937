/* events.c: the table of handled webhook event types (SPEC §5). */
#include "billing/events.h"

#include <string.h>

#include "base/base.h"
#include "billing/status.h"

struct event_type {
    const char *type;
    enum billing_event_kind kind;
};

static const struct event_type handled[] = {
    { "checkout.session.completed", EVENT_CHECKOUT },
    { "checkout.session.expired", EVENT_CHECKOUT_EXPIRED },
    { "customer.subscription.created", EVENT_SUBSCRIPTION },
    { "customer.subscription.updated", EVENT_SUBSCRIPTION },
    { "customer.subscription.deleted", EVENT_SUBSCRIPTION },
    { "customer.subscription.trial_will_end", EVENT_SUBSCRIPTION },
    { "customer.subscription.paused", EVENT_SUBSCRIPTION },
    { "customer.subscription.resumed", EVENT_SUBSCRIPTION },
    { "customer.subscription.pending_update_applied", EVENT_SUBSCRIPTION },
    { "customer.subscription.pending_update_expired", EVENT_SUBSCRIPTION },
    { "invoice.paid", EVENT_INVOICE },
    { "invoice.payment_failed", EVENT_INVOICE },
    { "invoice.finalized", EVENT_INVOICE },
    { "invoice.payment_action_required", EVENT_INVOICE },
    { "subscription_schedule.created", EVENT_SCHEDULE },
    { "subscription_schedule.updated", EVENT_SCHEDULE },
    { "subscription_schedule.released", EVENT_SCHEDULE },
    { "subscription_schedule.canceled", EVENT_SCHEDULE },
    { "subscription_schedule.completed", EVENT_SCHEDULE },
    { "subscription_schedule.aborted", EVENT_SCHEDULE },
    { "subscription_schedule.expiring", EVENT_SCHEDULE },
};

enum billing_event_kind billing_event_kind_of(const char *type)
{
    for (size_t i = 0; i < ARRAY_SIZE(handled); i++)
        if (strcmp(handled[i].type, type) == 0)
            return handled[i].kind;
    return EVENT_IGNORED;
}

bool billing_subscription_has_trial(const struct subscription *s)
{
    return s->trial_end > 0 || s->status == SUB_STATUS_TRIALING;
}

static bool time_ok(int64_t t)
{
    return t >= 0 && t <= BILLING_TIME_MAX;
}

const char *billing_subscription_time_out_of_range(const struct subscription *s)
{
    const struct {
        const char *name;
        int64_t t;
    } times[] = {
        { "current_period_start", s->current_period_start },
        { "current_period_end", s->current_period_end },
        { "cancel_at", s->cancel_at },
        { "canceled_at", s->canceled_at },
        { "trial_end", s->trial_end },
        { "stripe_updated", s->stripe_updated },
        { "pending_update.expires_at", s->pending_expires_at },
    };

    for (size_t i = 0; i < ARRAY_SIZE(times); i++)
        if (!time_ok(times[i].t))
            return times[i].name;
    return NULL;
}

const char *billing_event_time_out_of_range(const struct billing_event *ev)
{
    const struct invoice *inv = &ev->invoice;

    if (!time_ok(ev->created))
        return "created";
    if (ev->has_sub && billing_subscription_time_out_of_range(&ev->sub))
        return billing_subscription_time_out_of_range(&ev->sub);
    if (ev->kind == EVENT_SCHEDULE && !time_ok(ev->schedule.next_at))
        return "phases[].start_date";
    if (ev->kind != EVENT_INVOICE)
        return NULL;
    if (!time_ok(inv->created))
        return "invoice.created";
    if (!time_ok(inv->period_start))
        return "invoice.period_start";
    if (!time_ok(inv->period_end))
        return "invoice.period_end";
    return NULL;
}
