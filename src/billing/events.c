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
    { "customer.subscription.created", EVENT_SUBSCRIPTION },
    { "customer.subscription.updated", EVENT_SUBSCRIPTION },
    { "customer.subscription.deleted", EVENT_SUBSCRIPTION },
    { "customer.subscription.trial_will_end", EVENT_SUBSCRIPTION },
    { "invoice.paid", EVENT_INVOICE },
    { "invoice.payment_failed", EVENT_INVOICE },
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
