/*
 * faults.h: fault injection for the emulator's /v1 requests (control API: POST /_emulator/faults):
 * the next N requests, or a share of them (of one method and path, when asked), answer 500 or
 * 429, answer a 500 that Stripe saves under the Idempotency-Key, hang before answering, or lose
 * their connection. Thread-safe.
 */
#ifndef SUBGATE_EMULATOR_FAULTS_H
#define SUBGATE_EMULATOR_FAULTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/base.h"
#include "base/err.h"

#define EMU_FAULT_DELAY_MS_DEFAULT INT64_C(3000)
#define EMU_FAULT_METHOD_MAX       8   /* "DELETE" and its terminator */
#define EMU_FAULT_PATH_MAX         256 /* a /v1 path, terminator included */

enum emu_fault_mode {
    EMU_FAULT_NONE,
    EMU_FAULT_500,         /* answer 500 api_error, do nothing */
    EMU_FAULT_500_SAVED,   /* do nothing, answer 500 and keep it under the Idempotency-Key */
    EMU_FAULT_500_APPLIED, /* handle the request, answer 500 instead, keep it like 500_SAVED */
    EMU_FAULT_429,         /* answer 429 rate_limit_error, do nothing */
    EMU_FAULT_TIMEOUT,     /* wait delay_ms, then handle the request normally */
    EMU_FAULT_DROP,        /* close the connection without an answer, do nothing */
};

struct emu_fault_config {
    enum emu_fault_mode mode;
    int64_t count;                     /* requests still to fail; -1 when percent rules instead */
    int64_t percent;                   /* 0-100, used when count is -1 */
    int64_t delay_ms;                  /* EMU_FAULT_TIMEOUT */
    char method[EMU_FAULT_METHOD_MAX]; /* only requests of this method count; "" any */
    char path[EMU_FAULT_PATH_MAX];     /* only requests of this exact path count; "" any */
};

struct emu_faults; /* opaque */

struct emu_faults *emu_faults_new(uint64_t seed);
void emu_faults_free(struct emu_faults *f); /* NULL is a no-op */

/* Replaces the configuration (mode NONE clears it). */
void emu_faults_set(struct emu_faults *f, const struct emu_fault_config *c);

/*
 * Decides the fault for one request of method and path and counts it down; EMU_FAULT_NONE when
 * none, or when the configuration names another method or path (which then counts nothing).
 */
enum emu_fault_mode emu_faults_next(struct emu_faults *f, const char *method, const char *path,
                                    int64_t *delay_ms);

/*
 * {"mode":"500","count":1,"percent":0,"delay_ms":3000,"method":"","path":""} (new reference).
 */
json_t *emu_faults_json(struct emu_faults *f);

/*
 * Parses {"mode":"500"|"500_saved"|"500_applied"|"429"|"timeout"|"drop"|"none",
 * "count":N|"percent":P,"delay_ms":D,"method":M,"path":P} (method and path optional).
 * ERR_INVALID with a message in errbuf.
 */
MUST_CHECK enum err emu_fault_config_parse(const json_t *body, struct emu_fault_config *out,
                                           char *errbuf, size_t errlen);

/*
 * Reads the optional integer field name of a control-API body into *out when present. False
 * when it is present but not an integer in [min, max]; *out is untouched then.
 */
bool emu_json_int_field(const json_t *body, const char *name, int64_t min, int64_t max,
                        int64_t *out);

#endif /* SUBGATE_EMULATOR_FAULTS_H */
