/*
 * dispatch.h: the emulator's top layer: the http_dispatch_fn that main.c hands to the HTTP
 * server. It sends /v1 to api.c, /_emulator to control.c and the rest to pages.c; those
 * handlers use the emulator object (emu.h), which knows nothing of them.
 */
#ifndef SUBGATE_EMULATOR_DISPATCH_H
#define SUBGATE_EMULATOR_DISPATCH_H

#include "http/request.h"

/* Routes one request by path prefix; app is the struct emu. */
void emu_dispatch(void *app, struct request *req, struct response *resp);

#endif /* SUBGATE_EMULATOR_DISPATCH_H */
