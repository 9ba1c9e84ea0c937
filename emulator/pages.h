/*
 * pages.h: the emulator's hosted pages, plain HTML without JavaScript: checkout (card form,
 * test cards, the authentication step), the billing portal, and invoices.
 */
#ifndef SUBGATE_EMULATOR_PAGES_H
#define SUBGATE_EMULATOR_PAGES_H

#include "base/buf.h"
#include "emu.h"
#include "http/request.h"

/* Answers GET/POST /checkout/..., /portal/..., /invoice/... and /. */
void emu_pages_handle(struct emu *app, struct request *req, struct response *resp);

/* Appends s with &, <, >, " and ' escaped. */
MUST_CHECK enum err emu_html_escape(struct buf *b, const char *s);

#endif /* SUBGATE_EMULATOR_PAGES_H */
