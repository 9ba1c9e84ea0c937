/*
 * pages.c: hosted checkout, portal and invoice pages (see pages.h). Every page reads and
 * changes state under the emulator's mutex; everything echoed is HTML-escaped.
 */
#include "pages.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/str.h"
#include "base/xalloc.h"
#include "billing.h"
#include "form.h"
#include "http/router.h"
#include "objects.h"

#define PAGE_MAX ((size_t)256 * 1024)

struct page_call {
    struct emu *app;
    struct request *req;
    struct response *resp;
    char id[EMU_ID_MAX];
    json_t *form; /* decoded POST body ({} for GET) */
};

typedef void (*page_fn)(struct page_call *p);

struct page_route {
    const char *method;
    const char *pattern; /* '*' is one segment, the id */
    page_fn fn;
};

static void checkout_page(struct page_call *p);
static void checkout_pay(struct page_call *p);
static void checkout_3ds_complete(struct page_call *p);
static void checkout_3ds_fail(struct page_call *p);
static void portal_page(struct page_call *p);
static void portal_cancel(struct page_call *p);
static void portal_cancel_now(struct page_call *p);
static void portal_renew(struct page_call *p);
static void portal_switch(struct page_call *p);
static void invoice_page(struct page_call *p);
static void invoice_pdf(struct page_call *p);
static void invoice_pay(struct page_call *p);
static void invoice_3ds_complete(struct page_call *p);
static void invoice_3ds_fail(struct page_call *p);
static void index_page(struct page_call *p);

static const struct page_route page_routes[] = {
    { "GET", "/", index_page },
    { "GET", "/checkout/*", checkout_page },
    { "POST", "/checkout/*/pay", checkout_pay },
    { "POST", "/checkout/*/3ds/complete", checkout_3ds_complete },
    { "POST", "/checkout/*/3ds/fail", checkout_3ds_fail },
    { "GET", "/portal/*", portal_page },
    { "POST", "/portal/*/cancel", portal_cancel },
    { "POST", "/portal/*/cancel_now", portal_cancel_now },
    { "POST", "/portal/*/renew", portal_renew },
    { "POST", "/portal/*/switch", portal_switch },
    { "GET", "/invoice/*", invoice_page },
    { "GET", "/invoice/*/pdf", invoice_pdf },
    { "POST", "/invoice/*/pay", invoice_pay },
    { "POST", "/invoice/*/3ds/complete", invoice_3ds_complete },
    { "POST", "/invoice/*/3ds/fail", invoice_3ds_fail },
};

static const char page_head[] =
    "<!doctype html><html><head><meta charset=\"utf-8\"><title>%s</title><style>"
    "body{font-family:sans-serif;max-width:36em;margin:3em auto;padding:0 1em}"
    ".err{color:#b00}button{margin:.3em .3em .3em 0}</style></head><body>";

enum err emu_html_escape(struct buf *b, const char *s)
{
    enum err e = ERR_OK;

    for (; s && *s && e == ERR_OK; s++) {
        switch (*s) {
        case '&':
            e = buf_puts(b, "&amp;");
            break;
        case '<':
            e = buf_puts(b, "&lt;");
            break;
        case '>':
            e = buf_puts(b, "&gt;");
            break;
        case '"':
            e = buf_puts(b, "&quot;");
            break;
        case '\'':
            e = buf_puts(b, "&#39;");
            break;
        default:
            e = buf_append(b, s, 1);
        }
    }
    return e;
}

/* Sets a text/html response (body copied). */
static void respond_html(struct response *resp, int status, const char *body)
{
    free(resp->body);
    resp->status = status;
    resp->body = xstrdup(body);
    resp->len = strlen(body);
    resp->content_type = "text/html; charset=utf-8";
}

/* Sets a 303 redirect to location. */
static void respond_redirect(struct response *resp, const char *location)
{
    respond_html(resp, 303, "");
    if (!response_add_header(resp, "Location", location))
        respond_html(resp, 400, "<p>Invalid redirect URL</p>");
}

/* Appends fmt where each %s argument is escaped (only %s is supported). */
static void html(struct buf *b, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    for (const char *f = fmt; *f; f++) {
        if (f[0] == '%' && f[1] == 's') {
            (void)!emu_html_escape(b, va_arg(ap, const char *)); /* capped: page truncates */
            f++;
        } else {
            (void)!buf_append(b, f, 1); /* capped: the page truncates */
        }
    }
    va_end(ap);
}

static void page_send(struct page_call *p, int status, struct buf *b)
{
    html(b, "</body></html>");
    respond_html(p->resp, status, buf_str(b));
    buf_release(b);
}

static void page_begin(struct buf *b, const char *title)
{
    buf_init(b, PAGE_MAX);
    html(b, page_head, title);
    html(b, "<h1>%s</h1>", title);
}

static void page_message(struct page_call *p, int status, const char *title, const char *msg)
{
    struct buf b;

    page_begin(&b, title);
    html(&b, "<p>%s</p>", msg);
    page_send(p, status, &b);
}

static const char *str_field(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static void money(char *out, size_t len, json_int_t cents)
{
    snprintf(out, len, "$%lld.%02lld", (long long)(cents / 100), (long long)(cents % 100));
}

static void index_page(struct page_call *p)
{
    page_message(p, 200, "Stripe emulator",
                 "This is subgate's Stripe emulator. Checkout and portal sessions created "
                 "through its API link to pages here.");
}

/* The checkout form, with an error line when the last attempt failed. */
static void checkout_render(struct page_call *p, const json_t *s, int status, const char *error)
{
    json_t *priv = emu_state_private(p->app->st, str_field(s, "id"));
    json_t *price = emu_state_get(p->app->st, EMU_PRICE, str_field(priv, "price"));
    json_t *prod = emu_state_get(p->app->st, EMU_PRODUCT, str_field(price, "product"));
    json_int_t trial = json_integer_value(json_object_get(priv, "trial_days"));
    char amount[32], days[32];
    struct buf b;

    money(amount, sizeof(amount), json_integer_value(json_object_get(price, "unit_amount")));
    snprintf(days, sizeof(days), "%lld", (long long)trial);
    page_begin(&b, "Checkout");
    html(&b, "<p>Subscribe to <b>%s</b>: %s per month (%s).</p>", str_field(prod, "name"), amount,
         str_field(price, "id"));
    if (trial > 0)
        html(&b, "<p>Free trial: %s days.</p>", days);
    if (error)
        html(&b, "<p class=\"err\">%s</p>", error);
    html(&b, "<form method=\"post\" action=\"/checkout/%s/pay\">", str_field(s, "id"));
    if (json_is_true(json_object_get(priv, "allow_promotion_codes")))
        html(&b, "<p><label>Promotion code <input name=\"promotion_code\" size=\"16\">"
                 "</label></p>");
    else if (str_field(priv, "promotion_code"))
        html(&b, "<p>Promotion code applied.</p>");
    if (json_is_true(json_object_get(priv, "address_required")))
        html(&b, "<fieldset><legend>Billing address</legend>"
                 "<label>Name <input name=\"name\" size=\"24\"></label> "
                 "<label>Address <input name=\"line1\" size=\"24\"></label> "
                 "<label>City <input name=\"city\" size=\"16\"></label> "
                 "<label>Postal code <input name=\"postal_code\" size=\"8\"></label> "
                 "<label>Country <input name=\"country\" value=\"US\" size=\"2\"></label>"
                 "</fieldset>");
    if (json_is_true(json_object_get(priv, "automatic_tax")))
        html(&b, "<p>Tax is calculated from your address.</p>");
    html(&b, "<label>Card number "
             "<input name=\"card\" value=\"4242 4242 4242 4242\" size=\"24\"></label> "
             "<label>MM/YY <input name=\"exp\" value=\"12/34\" size=\"5\"></label> "
             "<label>CVC <input name=\"cvc\" value=\"123\" size=\"4\"></label>"
             "<p><button type=\"submit\">Subscribe</button></p></form>"
             "<p>Test cards: 4242 4242 4242 4242 pays, 4000 0000 0000 0002 is declined, "
             "4000 0025 0000 3155 and 4000 0027 6000 3184 ask for authentication.</p>");
    if (str_field(s, "cancel_url"))
        html(&b, "<p><a href=\"%s\">Cancel and go back</a></p>", str_field(s, "cancel_url"));
    page_send(p, status, &b);
}

/* The page of an expired session: it says so, and offers no form to pay with. */
static void expired_page(struct page_call *p, const json_t *s)
{
    struct buf b;

    page_begin(&b, "Checkout");
    html(&b, "<p class=\"err\">This checkout session has expired. It can no longer be paid; "
             "return to the site to start a new one.</p>");
    if (str_field(s, "cancel_url"))
        html(&b, "<p><a href=\"%s\">Go back</a></p>", str_field(s, "cancel_url"));
    page_send(p, 410, &b);
}

/* The open session of the page, or NULL with an answer sent. */
static json_t *open_session(struct page_call *p)
{
    json_t *s;

    emu_checkout_expire_due(p->app);
    s = emu_state_get(p->app->st, EMU_SESSION, p->id);
    if (!s) {
        page_message(p, 404, "Checkout", "No such checkout session.");
        return NULL;
    }
    if (strcmp(str_field(s, "status"), "expired") == 0) {
        expired_page(p, s);
        return NULL;
    }
    if (strcmp(str_field(s, "status"), "open") != 0) {
        page_message(p, 409, "Checkout", "This checkout session is already complete.");
        return NULL;
    }
    return s;
}

static void checkout_page(struct page_call *p)
{
    json_t *s = open_session(p);

    if (s)
        checkout_render(p, s, 200, NULL);
}

/* Pays and redirects to success_url with {CHECKOUT_SESSION_ID} filled in. */
static void checkout_finish(struct page_call *p, json_t *s, const char *card)
{
    static const char marker[] = "{CHECKOUT_SESSION_ID}";
    const char *url = str_field(s, "success_url");
    struct buf b;

    emu_checkout_pay(p->app, s, card);
    buf_init(&b, (size_t)EMU_URL_MAX * 2);
    for (const char *m; (m = strstr(url, marker)) != NULL; url = m + strlen(marker))
        (void)!buf_appendf(&b, "%.*s%s", (int)(m - url), url, p->id); /* capped */
    (void)!buf_puts(&b, url); /* capped: a URL past the cap is cut */
    respond_redirect(p->resp, buf_str(&b));
    buf_release(&b);
}

/* The authentication step of a payment on page `kind` ("checkout" or "invoice"). */
static void auth_page(struct page_call *p, const char *kind)
{
    struct buf b;

    page_begin(&b, "Complete authentication");
    html(&b,
         "<p>Your bank asks you to authenticate this payment (test cards "
         "4000 0025 0000 3155 and 4000 0027 6000 3184).</p>"
         "<form method=\"post\" action=\"/%s/%s/3ds/complete\">"
         "<button type=\"submit\">Complete authentication</button></form>"
         "<form method=\"post\" action=\"/%s/%s/3ds/fail\">"
         "<button type=\"submit\">Fail authentication</button></form>",
         kind, p->id, kind, p->id);
    page_send(p, 200, &b);
}

static const char *form_str(const struct page_call *p, const char *key)
{
    const char *v = json_string_value(json_object_get(p->form, key));

    return v && v[0] ? v : NULL;
}

/*
 * Reads the promotion code and billing address fields into the session's private data; false
 * with the form shown again when one is wrong.
 */
static bool checkout_fields(struct page_call *p, json_t *s)
{
    json_t *priv = emu_state_private(p->app->st, p->id);
    const char *code = form_str(p, "promotion_code");
    size_t i;
    json_t *pc, *found = NULL;

    if (code && json_is_true(json_object_get(priv, "allow_promotion_codes"))) {
        json_array_foreach(emu_state_all(p->app->st, EMU_PROMOTION_CODE), i, pc)
        {
            if (strcasecmp(str_field(pc, "code"), code) == 0 &&
                json_is_true(json_object_get(pc, "active")))
                found = pc;
        }
        if (!found) {
            checkout_render(p, s, 400, "This code is invalid.");
            return false;
        }
        json_object_set(priv, "promotion_code", json_object_get(found, "id"));
    }
    if (!json_is_true(json_object_get(priv, "address_required")))
        return true;
    if (!form_str(p, "line1") || !form_str(p, "postal_code") || !form_str(p, "country")) {
        checkout_render(p, s, 400, "Enter your billing address: address, postal code, country.");
        return false;
    }
    json_object_set_new(priv, "address",
                        json_pack("{s:s?,s:s,s:s,s:n,s:s,s:n}", "city", form_str(p, "city"),
                                  "country", form_str(p, "country"), "line1", form_str(p, "line1"),
                                  "line2", "postal_code", form_str(p, "postal_code"), "state"));
    if (form_str(p, "name"))
        json_object_set_new(priv, "name", json_string(form_str(p, "name")));
    return true;
}

static void checkout_pay(struct page_call *p)
{
    json_t *s = open_session(p);
    const char *card = json_string_value(json_object_get(p->form, "card"));

    if (!s || !checkout_fields(p, s))
        return;
    switch (emu_card_parse(card)) {
    case EMU_CARD_OK:
        checkout_finish(p, s, "4242424242424242");
        break;
    case EMU_CARD_DECLINE:
        checkout_render(p, s, 402, "Your card was declined.");
        break;
    case EMU_CARD_3DS:
        json_object_set_new(emu_state_private(p->app->st, p->id), "pending_3ds",
                            json_string("4000002500003155"));
        auth_page(p, "checkout");
        break;
    case EMU_CARD_3DS_ALWAYS:
        json_object_set_new(emu_state_private(p->app->st, p->id), "pending_3ds",
                            json_string("4000002760003184"));
        auth_page(p, "checkout");
        break;
    case EMU_CARD_INVALID:
        checkout_render(p, s, 402, "Your card number is incorrect. Use a Stripe test card.");
        break;
    }
}

/* The session waiting for authentication, or NULL with an answer sent. */
static json_t *pending_session(struct page_call *p)
{
    json_t *s = open_session(p);
    json_t *priv;

    if (!s)
        return NULL;
    priv = emu_state_private(p->app->st, p->id);
    if (!json_is_string(json_object_get(priv, "pending_3ds"))) {
        checkout_render(p, s, 409, "No payment is waiting for authentication.");
        return NULL;
    }
    return s;
}

static void checkout_3ds_complete(struct page_call *p)
{
    json_t *s = pending_session(p);
    json_t *priv;
    char card[32];

    if (!s)
        return;
    priv = emu_state_private(p->app->st, p->id);
    str_copy(card, sizeof(card), str_field(priv, "pending_3ds"));
    json_object_del(priv, "pending_3ds");
    checkout_finish(p, s, card);
}

static void checkout_3ds_fail(struct page_call *p)
{
    json_t *s = pending_session(p);

    if (s)
        json_object_del(emu_state_private(p->app->st, p->id), "pending_3ds");
    if (s)
        checkout_render(p, s, 402,
                        "Your card was declined. We are unable to authenticate your payment "
                        "method.");
}

static void date_str(char *out, size_t len, json_int_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    strftime(out, len, "%Y-%m-%d", &tm);
}

/* One subscription's line and buttons on the portal page. */
static void portal_sub(struct page_call *p, struct buf *b, const json_t *sub)
{
    const json_t *price = emu_subscription_price(sub);
    json_t *prod = emu_state_get(p->app->st, EMU_PRODUCT, str_field(price, "product"));
    const char *sid = str_field(sub, "id");
    bool ending = json_is_true(json_object_get(sub, "cancel_at_period_end"));
    char amount[32], end[32];
    size_t i;
    json_t *other;

    money(amount, sizeof(amount), json_integer_value(json_object_get(price, "unit_amount")));
    date_str(end, sizeof(end), json_integer_value(json_object_get(sub, "current_period_end")));
    html(b, "<h2>%s, %s per %s</h2><p>Status: %s. %s %s.</p>", str_field(prod, "name"), amount,
         emu_price_interval(price), str_field(sub, "status"), ending ? "Ends on" : "Renews on",
         end);
    html(b,
         "<form method=\"post\" action=\"/portal/%s/%s\"><input type=\"hidden\" "
         "name=\"subscription\" value=\"%s\"><button type=\"submit\">%s</button></form>",
         p->id, ending ? "renew" : "cancel", sid,
         ending ? "Renew subscription" : "Cancel at period end");
    html(b,
         "<form method=\"post\" action=\"/portal/%s/cancel_now\"><input type=\"hidden\" "
         "name=\"subscription\" value=\"%s\"><button type=\"submit\">Cancel now</button>"
         "</form>",
         p->id, sid);
    json_array_foreach(emu_state_all(p->app->st, EMU_PRICE), i, other)
    {
        json_t *op = emu_state_get(p->app->st, EMU_PRODUCT, str_field(other, "product"));
        char other_amount[32];
        if (strcmp(str_field(other, "id"), str_field(price, "id")) == 0)
            continue;
        money(other_amount, sizeof(other_amount),
              json_integer_value(json_object_get(other, "unit_amount")));
        html(b,
             "<form method=\"post\" action=\"/portal/%s/switch\"><input type=\"hidden\" "
             "name=\"subscription\" value=\"%s\"><input type=\"hidden\" name=\"price\" "
             "value=\"%s\"><button type=\"submit\">Switch to %s (%s per %s)</button></form>",
             p->id, sid, str_field(other, "id"), str_field(op, "name"), other_amount,
             emu_price_interval(other));
    }
}

static json_t *portal_session(struct page_call *p)
{
    json_t *ps = emu_state_get(p->app->st, EMU_PORTAL, p->id);

    if (!ps)
        page_message(p, 404, "Billing portal", "No such billing portal session.");
    return ps;
}

static void portal_page(struct page_call *p)
{
    json_t *ps = portal_session(p);
    const char *cus;
    struct buf b;
    size_t i, shown = 0;
    json_t *sub;

    if (!ps)
        return;
    cus = str_field(ps, "customer");
    page_begin(&b, "Billing portal");
    json_array_foreach(emu_state_all(p->app->st, EMU_SUBSCRIPTION), i, sub)
    {
        if (strcmp(str_field(sub, "customer"), cus) != 0 ||
            strcmp(str_field(sub, "status"), "canceled") == 0)
            continue;
        portal_sub(p, &b, sub);
        shown++;
    }
    if (shown == 0)
        html(&b, "<p>You have no active subscription.</p>");
    html(&b, "<p><a href=\"%s\">Return</a></p>", str_field(ps, "return_url"));
    page_send(p, 200, &b);
}

/* The customer's live subscription named by the form, or NULL with an answer sent. */
static json_t *portal_target(struct page_call *p, json_t **ps)
{
    const char *sid = json_string_value(json_object_get(p->form, "subscription"));
    json_t *sub = emu_state_get(p->app->st, EMU_SUBSCRIPTION, sid);

    *ps = portal_session(p);
    if (!*ps)
        return NULL;
    if (!sub || strcmp(str_field(sub, "customer"), str_field(*ps, "customer")) != 0 ||
        strcmp(str_field(sub, "status"), "canceled") == 0) {
        page_message(p, 404, "Billing portal", "No such subscription.");
        return NULL;
    }
    return sub;
}

static void portal_set_cancel(struct page_call *p, bool on)
{
    json_t *ps;
    json_t *sub = portal_target(p, &ps);
    json_t *prev;

    if (!sub)
        return;
    prev = json_object();
    emu_subscription_cancel_at_period_end(p->app, sub, on, prev);
    emu_subscription_updated(p->app, sub, prev);
    respond_redirect(p->resp, str_field(ps, "return_url"));
}

static void portal_cancel(struct page_call *p)
{
    portal_set_cancel(p, true);
}

static void portal_renew(struct page_call *p)
{
    portal_set_cancel(p, false);
}

static void portal_cancel_now(struct page_call *p)
{
    json_t *ps;
    json_t *sub = portal_target(p, &ps);

    if (!sub)
        return;
    emu_subscription_cancel_now(p->app, sub);
    respond_redirect(p->resp, str_field(ps, "return_url"));
}

static void portal_switch(struct page_call *p)
{
    json_t *ps;
    json_t *sub = portal_target(p, &ps);
    const char *pid = json_string_value(json_object_get(p->form, "price"));
    json_t *price = emu_state_get(p->app->st, EMU_PRICE, pid);
    struct emu_sub_change ch = { price, "always_invoice", 0, false, "allow_incomplete" };
    json_t *prev, *inv;

    if (!sub)
        return;
    if (!price) {
        page_message(p, 404, "Billing portal", "No such price.");
        return;
    }
    prev = json_object();
    inv = emu_subscription_change(p->app, sub, &ch, prev);
    emu_subscription_updated(p->app, sub, prev);
    if (inv)
        emu_invoice_events(p->app, inv, json_integer_value(json_object_get(inv, "created")));
    respond_redirect(p->resp, str_field(ps, "return_url"));
}

/* The invoice, with a card form while it is open and an error line when the last try failed. */
static void invoice_render(struct page_call *p, const json_t *inv, int status, const char *error)
{
    char amount[32], paid[32], start[32], end[32];
    struct buf b;

    money(amount, sizeof(amount), json_integer_value(json_object_get(inv, "amount_due")));
    money(paid, sizeof(paid), json_integer_value(json_object_get(inv, "amount_paid")));
    date_str(start, sizeof(start), json_integer_value(json_object_get(inv, "period_start")));
    date_str(end, sizeof(end), json_integer_value(json_object_get(inv, "period_end")));
    page_begin(&b, "Invoice");
    html(&b,
         "<p>Invoice %s (%s)</p><p>Amount due: %s; paid: %s. Status: %s.</p>"
         "<p>Period: %s to %s.</p><p><a href=\"/invoice/%s/pdf\">Download PDF</a></p>",
         str_field(inv, "number"), str_field(inv, "id"), amount, paid, str_field(inv, "status"),
         start, end, str_field(inv, "id"));
    if (error)
        html(&b, "<p class=\"err\">%s</p>", error);
    if (strcmp(str_field(inv, "status"), "open") == 0)
        html(&b,
             "<form method=\"post\" action=\"/invoice/%s/pay\"><label>Card number "
             "<input name=\"card\" value=\"4242 4242 4242 4242\" size=\"24\"></label> "
             "<label>MM/YY <input name=\"exp\" value=\"12/34\" size=\"5\"></label> "
             "<label>CVC <input name=\"cvc\" value=\"123\" size=\"4\"></label>"
             "<p><button type=\"submit\">Pay %s</button></p></form>"
             "<p>Test cards: 4242 4242 4242 4242 pays, 4000 0000 0000 0002 is declined, "
             "4000 0025 0000 3155 and 4000 0027 6000 3184 ask for authentication.</p>",
             str_field(inv, "id"), amount);
    page_send(p, status, &b);
}

/* The page's invoice, or NULL with an answer sent. */
static json_t *page_invoice(struct page_call *p)
{
    json_t *inv;

    emu_pending_expire_due(p->app);
    inv = emu_state_get(p->app->st, EMU_INVOICE, p->id);
    if (!inv)
        page_message(p, 404, "Invoice", "No such invoice.");
    return inv;
}

static void invoice_page(struct page_call *p)
{
    json_t *inv = page_invoice(p);

    if (inv)
        invoice_render(p, inv, 200, NULL);
}

/* The page's open invoice, or NULL with an answer sent. */
static json_t *open_invoice(struct page_call *p)
{
    json_t *inv = page_invoice(p);

    if (inv && strcmp(str_field(inv, "status"), "open") != 0) {
        invoice_render(p, inv, 409, "This invoice is not open: there is nothing to pay.");
        return NULL;
    }
    return inv;
}

/* Pays with a card that passed (or the declining one), then shows the invoice. */
static void invoice_finish(struct page_call *p, json_t *inv, const char *card)
{
    char location[EMU_ID_MAX + 16];

    if (emu_invoice_pay(p->app, inv, card) != EMU_PAY_OK) {
        invoice_render(p, inv, 402, "Your card was declined.");
        return;
    }
    snprintf(location, sizeof(location), "/invoice/%s", p->id);
    respond_redirect(p->resp, location);
}

static void invoice_pay(struct page_call *p)
{
    json_t *inv = open_invoice(p);
    const char *card = json_string_value(json_object_get(p->form, "card"));

    if (!inv)
        return;
    switch (emu_card_parse(card)) {
    case EMU_CARD_OK:
        invoice_finish(p, inv, "4242424242424242");
        break;
    case EMU_CARD_DECLINE:
        invoice_finish(p, inv, "4000000000000002");
        break;
    case EMU_CARD_3DS:
        json_object_set_new(emu_state_private(p->app->st, p->id), "pending_3ds",
                            json_string("4000002500003155"));
        auth_page(p, "invoice");
        break;
    case EMU_CARD_3DS_ALWAYS:
        json_object_set_new(emu_state_private(p->app->st, p->id), "pending_3ds",
                            json_string("4000002760003184"));
        auth_page(p, "invoice");
        break;
    case EMU_CARD_INVALID:
        invoice_render(p, inv, 402, "Your card number is incorrect. Use a Stripe test card.");
        break;
    }
}

/* The open invoice waiting for authentication, or NULL with an answer sent. */
static json_t *pending_invoice(struct page_call *p)
{
    json_t *inv = open_invoice(p);

    if (inv &&
        !json_is_string(json_object_get(emu_state_private(p->app->st, p->id), "pending_3ds"))) {
        invoice_render(p, inv, 409, "No payment is waiting for authentication.");
        return NULL;
    }
    return inv;
}

static void invoice_3ds_complete(struct page_call *p)
{
    json_t *inv = pending_invoice(p);
    json_t *priv;
    char card[32];

    if (!inv)
        return;
    priv = emu_state_private(p->app->st, p->id);
    str_copy(card, sizeof(card), str_field(priv, "pending_3ds"));
    json_object_del(priv, "pending_3ds");
    invoice_finish(p, inv, card);
}

static void invoice_3ds_fail(struct page_call *p)
{
    json_t *inv = pending_invoice(p);

    if (!inv)
        return;
    json_object_del(emu_state_private(p->app->st, p->id), "pending_3ds");
    invoice_render(p, inv, 402,
                   "Your card was declined. We are unable to authenticate your payment method.");
}

static void invoice_pdf(struct page_call *p)
{
    static const char pdf[] = "%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
                              "2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
                              "3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>endobj\n"
                              "trailer<</Root 1 0 R>>\n%%EOF\n";

    if (!emu_state_get(p->app->st, EMU_INVOICE, p->id)) {
        page_message(p, 404, "Invoice", "No such invoice.");
        return;
    }
    respond_html(p->resp, 200, pdf);
    p->resp->content_type = "application/pdf";
}

static bool decode_form(struct page_call *p)
{
    struct emu_form f;

    emu_form_init(&f);
    if (emu_form_parse(&f, buf_str(&p->req->body), p->req->body.len) != ERR_OK) {
        page_message(p, 400, "Bad request", f.error);
        emu_form_release(&f);
        return false;
    }
    p->form = f.root;
    return true;
}

void emu_pages_handle(struct emu *app, struct request *req, struct response *resp)
{
    struct page_call p = { .app = app, .req = req, .resp = resp };

    for (size_t i = 0; i < ARRAY_SIZE(page_routes); i++) {
        if (strcmp(page_routes[i].method, req->method) != 0 ||
            !router_path_match(page_routes[i].pattern, req->path, p.id, sizeof(p.id)))
            continue;
        if (!decode_form(&p))
            return;
        req->route = page_routes[i].pattern;
        pthread_mutex_lock(&app->mu);
        page_routes[i].fn(&p);
        pthread_mutex_unlock(&app->mu);
        json_decref(p.form);
        return;
    }
    page_message(&p, 404, "Not found", "There is no page here.");
}
