/*
 * fuzz_gate.c: libFuzzer target for billing/gate: arbitrary bytes as a GATE_RULES_FILE body and
 * as an X-Original-URI. A rules parse either fails with an empty set or gives rules that
 * validate; a normalized path is a fixed point with no empty, "." or ".." segment.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "billing/gate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_rules(const uint8_t *data, size_t size, const struct tier_catalog *cat)
{
    static struct gate_rules rules; /* large: not on the stack */
    char err[256] = "";

    if (gate_rules_parse((const char *)data, size, cat, &rules, err, sizeof(err)) != ERR_OK) {
        if (rules.count != 0 || err[0] == '\0')
            abort();
        return;
    }
    if (gate_rules_validate(&rules, cat, err, sizeof(err)) != ERR_OK)
        abort();
    for (size_t i = 0; i < rules.count; i++)
        if (gate_rules_match(&rules, rules.rules[i].prefix, false) != &rules.rules[i])
            abort(); /* a prefix matches itself first: it is the longest */
}

static void check_path(const uint8_t *data, size_t size)
{
    char *uri = malloc(size + 1);
    char out[GATE_PATH_MAX], again[GATE_PATH_MAX];

    if (!uri)
        return;
    memcpy(uri, data, size);
    uri[size] = '\0';
    if (gate_path_normalize(uri, 0, out, sizeof(out)) == ERR_OK) {
        if (out[0] != '/' || strstr(out, "//") || strstr(out, "/./") || strstr(out, "/../"))
            abort();
        if (gate_path_normalize(out, 0, again, sizeof(again)) != ERR_OK || strcmp(out, again) != 0)
            abort();
    }
    free(uri);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct tier_catalog cat;
    static int ready;

    if (!ready) {
        tier_catalog_builtin(&cat);
        ready = 1;
    }
    check_rules(data, size, &cat);
    check_path(data, size);
    return 0;
}
