/*
 * faults.h: fault injection for the emulator's /v1 requests (control API: POST /_emulator/faults):
 * the next N requests, or a share of them, answer 500 or 429, hang before answering, or lose
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

enum emu_fault_mode {
    EMU_FAULT_NONE,
    EMU_FAULT_500,     /* answer 500 api_error, do nothing */
    EMU_FAULT_429,     /* answer 429 rate_limit_error, do nothing */
    EMU_FAULT_TIMEOUT, /* wait delay_ms, then handle the request normally */
    EMU_FAULT_DROP,    /* close the connection without an answer, do nothing */
};

struct emu_fault_config {
    enum emu_fault_mode mode;
    int64_t count;    /* requests still to fail; -1 when percent rules instead */
    int64_t percent;  /* 0-100, used when count is -1 */
    int64_t delay_ms; /* EMU_FAULT_TIMEOUT */
};

struct emu_faults; /* opaque */

struct emu_faults *emu_faults_new(uint64_t seed);
void emu_faults_free(struct emu_faults *f); /* NULL is a no-op */

/* Replaces the configuration (mode NONE clears it). */
void emu_faults_set(struct emu_faults *f, const struct emu_fault_config *c);

/* Decides the fault for one request and counts it down; EMU_FAULT_NONE when none. */
enum emu_fault_mode emu_faults_next(struct emu_faults *f, int64_t *delay_ms);

/* {"mode":"500","count":1,"percent":0,"delay_ms":3000} (new reference). */
json_t *emu_faults_json(struct emu_faults *f);

/*
 * Parses {"mode":"500"|"429"|"timeout"|"drop"|"none","count":N|"percent":P,"delay_ms":D}.
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
