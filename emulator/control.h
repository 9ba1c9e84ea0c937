/*
 * control.h: the emulator's control API under /_emulator (loopback callers only, no Stripe
 * key): reset, faults, webhook endpoint and delivery, a customer's renewal card, a customer's
 * payments with their refunds, and the log of /v1 requests received. JSON in, JSON out.
 */
#ifndef SUBGATE_EMULATOR_CONTROL_H
#define SUBGATE_EMULATOR_CONTROL_H

#include "emu.h"
#include "http/request.h"

void emu_control_handle(struct emu *app, struct request *req, struct response *resp);

#endif /* SUBGATE_EMULATOR_CONTROL_H */
