/* dispatch.c: the emulator's table of path prefixes and their handlers (see dispatch.h). */
#include "dispatch.h"

#include "api.h"
#include "base/base.h"
#include "base/str.h"
#include "control.h"
#include "emu.h"
#include "pages.h"
#include "persist.h"

typedef void (*emu_handler_fn)(struct emu *app, struct request *req, struct response *resp);

/* First match wins; the empty prefix sends everything else to the hosted pages. */
static const struct {
    const char *prefix;
    emu_handler_fn handle;
} prefixes[] = {
    { "/v1/", emu_api_handle },
    { "/_emulator/", emu_control_handle },
    { "", emu_pages_handle },
};

void emu_dispatch(void *app, struct request *req, struct response *resp)
{
    for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++) {
        if (str_has_prefix(req->path, prefixes[i].prefix)) {
            prefixes[i].handle(app, req, resp);
            emu_persist_after_request(app, resp); /* before the answer goes out */
            return;
        }
    }
}
