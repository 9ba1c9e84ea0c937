/*
 * fuzz_skim.c: libFuzzer target holding stripe/skim.h to its reference (skim_ref.h: jansson's
 * whole tree, filtered) on any bytes, and the webhook parse built on it (stripe_event_parse) to
 * the whole-tree parse (stripe_event_parse_full). Allowed differences, as skim.h documents:
 * nesting past STRIPE_SKIM_DEPTH_MAX, a duplicate key inside a member that is not built, and
 * a NUL byte, which skim always refuses and jansson lets through right after a number or a
 * literal ("{\"a\":1\0}").
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "skim_ref.h"
#include "stripe/events.h"
#include "stripe/skim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* in strcmp order, as skim.h asks */
static const char *const keep[] = { "created", "customer", "data",   "id",   "items",  "metadata",
                                    "object",  "price",    "status", "type", "user_id" };

static void check_events(const char *text, size_t len)
{
    struct billing_event a, b;
    struct stripe_error sa, sb;
    enum err ea, eb;

    memset(&sa, 0, sizeof(sa));
    memset(&sb, 0, sizeof(sb));
    ea = stripe_event_parse(text, len, &a, &sa);
    eb = stripe_event_parse_full(text, len, &b, &sb);
    if (ea != eb)
        abort();
    if (ea != ERR_INVALID &&
        (memcmp(&a, &b, sizeof(a)) != 0 || strcmp(sa.message, sb.message) != 0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    char why[128] = "";
    json_t *ours =
        stripe_skim_parse(text, size, keep, sizeof(keep) / sizeof(keep[0]), why, sizeof(why));
    json_t *ref = json_loadb(text, size, JSON_REJECT_DUPLICATES, NULL);
    json_t *loose = NULL, *want = NULL;

    if (!ours && strstr(why, "nested too deep")) {
        json_decref(ref);
        return 0;
    }
    if (!ours && !why[0])
        abort(); /* a refusal says why */
    if (!ours && memchr(text, '\0', size)) {
        json_decref(ref);
        return 0; /* refused, jansson or not */
    }
    if (json_is_object(ref)) {
        want = skim_ref_filter(ref, keep, sizeof(keep) / sizeof(keep[0]));
        if (!ours || !json_equal(want, ours))
            abort();
        check_events(text, size);
    } else if (ours) {
        /* accepted where jansson refused: only for a duplicate inside a member not built */
        loose = json_loadb(text, size, 0, NULL);
        want = json_is_object(loose) ? skim_ref_filter(loose, keep, sizeof(keep) / sizeof(keep[0]))
                                     : NULL;
        if (!want || !json_equal(want, ours))
            abort();
    }
    json_decref(ours);
    json_decref(ref);
    json_decref(loose);
    json_decref(want);
    return 0;
}
