/*
 * page.h: the billing page served at /billing/ (docs/billing-page.md): its files under
 * web/billing/ and the JS client (clients/js/subgate.js), compiled into the binary by
 * scripts/embed_file.sh (build/<flavor>/gen/page.c), and the answers' headers.
 */
#ifndef SUBGATE_API_PAGE_H
#define SUBGATE_API_PAGE_H

#include <stddef.h>

struct api;

/* Each file's bytes (NUL-terminated), its length without the NUL, and a strong quoted ETag. */
extern const char page_index_html[];
extern const size_t page_index_html_len;
extern const char page_index_html_etag[];
extern const char page_billing_css[];
extern const size_t page_billing_css_len;
extern const char page_billing_css_etag[];
extern const char page_billing_js[];
extern const size_t page_billing_js_len;
extern const char page_billing_js_etag[];
extern const char page_subgate_js[];
extern const size_t page_subgate_js_len;
extern const char page_subgate_js_etag[];

/*
 * Renders what the page's answers carry and never changes after start: the
 * Content-Security-Policy (frame-ancestors 'self' and CORS_ORIGINS) and the ETag of the theme
 * (api->theme_css, BILLING_THEME_FILE). Called by api_prepare; page_release frees it.
 */
void page_prepare(struct api *api);
void page_release(struct api *api);

#endif /* SUBGATE_API_PAGE_H */
