/*
 * page.c: the billing page at /billing/ (docs/billing-page.md): a handful of files compiled in
 * (api/page.h), each answered with its Content-Type, a strong ETag, and headers that keep the
 * page to its own scripts and styles and keep its address (which may hold a token in its
 * fragment) out of Referer headers.
 */
#include "api/page.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/handlers.h"
#include "base/buf.h"
#include "base/hmac.h"
#include "base/log.h"
#include "base/str.h"
#include "base/url.h"
#include "config/config.h"

/* The base and CORS_ORIGINS' at most 32 origins (config.c), each a space and URL_ORIGIN_MAX. */
#define CSP_MAX (256 + 32 * (URL_ORIGIN_MAX + 1))

/* No inline script or style, nothing from elsewhere; the API calls go to this origin only. */
#define CSP_BASE                                                                   \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "    \
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; " \
    "frame-ancestors 'self'"

struct page_file {
    const char *path; /* the route's path */
    const char *content_type;
    const char *body;
    const size_t *len;
    const char *etag;
};

/* clang-format off */
static const struct page_file files[] = {
    { "/billing/",           "text/html; charset=utf-8",       page_index_html,
      &page_index_html_len,  page_index_html_etag },
    { "/billing/billing.css", "text/css; charset=utf-8",       page_billing_css,
      &page_billing_css_len, page_billing_css_etag },
    { "/billing/billing.js", "text/javascript; charset=utf-8", page_billing_js,
      &page_billing_js_len,  page_billing_js_etag },
    { "/billing/subgate.js", "text/javascript; charset=utf-8", page_subgate_js,
      &page_subgate_js_len,  page_subgate_js_etag },
};

/* clang-format on */

#define THEME_PATH "/billing/theme.css"

void page_prepare(struct api *api)
{
    const struct config *cfg = api->cfg;
    struct hmac_part part = { api->theme_css ? api->theme_css : "", api->theme_len };
    char hex[HMAC_SHA256_HEX_LEN + 1];
    struct buf b;

    buf_init(&b, CSP_MAX);
    if (buf_puts(&b, CSP_BASE) != ERR_OK)
        log_error("billing page: cannot render its Content-Security-Policy");
    /* Origins are checked as scheme://host[:port] at start: no space or ';' can get in. */
    for (size_t i = 0; i < cfg->cors_origin_count; i++)
        if (buf_appendf(&b, " %s", cfg->cors_origins[i]) != ERR_OK)
            log_error("billing page: CORS_ORIGINS too long for frame-ancestors: '%s' left out",
                      cfg->cors_origins[i]);
    api->page_csp = buf_detach(&b, NULL);
    /* A keyed hash as a plain digest: the key is a fixed label, not a secret. */
    if (hmac_sha256_hex("theme", 5, &part, 1, hex) != ERR_OK)
        hex[0] = '\0';
    snprintf(api->theme_etag, sizeof(api->theme_etag), "\"%.32s\"", hex);
}

void page_release(struct api *api)
{
    free(api->page_csp);
    api->page_csp = NULL;
}

/* If-None-Match names etag (or is "*"): the copy the browser holds is current. */
static bool etag_matches(const char *if_none_match, const char *etag)
{
    return if_none_match && (strstr(if_none_match, etag) || strcmp(if_none_match, "*") == 0);
}

/* Answers 200 with the body, or 304 when the browser's copy is current, with the page headers. */
static void answer(const struct request *req, struct response *resp, const char *content_type,
                   const char *body, size_t len, const char *etag)
{
    const struct api *api = req->app;

    if (etag_matches(request_header(req, "If-None-Match"), etag))
        response_static(resp, 304, NULL, NULL, 0);
    else
        response_static(resp, 200, content_type, body, len);
    (void)response_add_header(resp, "ETag", etag); /* fixed strings: never refused */
    (void)response_add_header(resp, "Cache-Control", "no-cache");
    (void)response_add_header(resp, "Content-Security-Policy", api->page_csp);
    (void)response_add_header(resp, "X-Content-Type-Options", "nosniff");
    (void)response_add_header(resp, "Referrer-Policy", "no-referrer");
}

enum err page_file(struct request *req, struct response *resp)
{
    const struct api *api = req->app;

    if (strcmp(req->path, THEME_PATH) == 0) {
        /* Without BILLING_THEME_FILE an empty sheet: the page links it either way. */
        answer(req, resp, "text/css; charset=utf-8", api->theme_css ? api->theme_css : "",
               api->theme_len, api->theme_etag);
        return ERR_OK;
    }
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        if (strcmp(req->path, files[i].path) == 0) {
            answer(req, resp, files[i].content_type, files[i].body, *files[i].len, files[i].etag);
            return ERR_OK;
        }
    }
    return request_fail(req, ERR_NOT_FOUND, NULL, NULL, "no route for '%s'", req->path);
}

/* /billing: the page is /billing/, whose relative links resolve under /billing/. */
enum err page_redirect(struct request *req, struct response *resp)
{
    (void)req;
    response_static(resp, 308, NULL, NULL, 0);
    (void)response_add_header(resp, "Location", "/billing/");
    (void)response_add_header(resp, "Referrer-Policy", "no-referrer");
    return ERR_OK;
}
