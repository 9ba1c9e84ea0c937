/*
 * api.h: the emulator's Stripe API under /v1: faults first, then the secret key, the route,
 * the parameter check, Idempotency-Key, the handler, and Stripe's error JSON for every refusal.
 */
#ifndef SUBGATE_EMULATOR_API_H
#define SUBGATE_EMULATOR_API_H

#include "emu.h"
#include "http/request.h"

/* Answers one /v1 request (and records it in the request log). */
void emu_api_handle(struct emu *app, struct request *req, struct response *resp);

/* Sets Stripe's error body {"error":{type, code?, param?, message}} with status. */
void emu_api_error(struct response *resp, int status, const char *type, const char *code,
                   const char *param, const char *message);

#endif /* SUBGATE_EMULATOR_API_H */
