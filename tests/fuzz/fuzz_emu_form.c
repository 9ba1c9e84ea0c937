/*
 * fuzz_emu_form.c: libFuzzer target for the emulator's form decoder (emulator/form.c, linked in
 * by the Makefile's fuzz_emu_<m> rule). A decoded tree holds only objects, arrays and strings,
 * never deeper than the cap, and every string re-encodes and decodes to itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/buf.h"
#include "form.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Recursive, bounded by EMU_FORM_MAX_DEPTH. */
/* NOLINTNEXTLINE(misc-no-recursion) */
static void check_tree(json_t *v, int depth)
{
    const char *key;
    json_t *child;
    size_t i;

    if (depth > EMU_FORM_MAX_DEPTH)
        abort();
    if (json_is_string(v))
        return;
    if (json_is_object(v)) {
        json_object_foreach(v, key, child) check_tree(child, depth + 1);
        return;
    }
    if (!json_is_array(v))
        abort();
    json_array_foreach(v, i, child) check_tree(child, depth + 1);
}

/* Every top-level string value survives an encode/decode round trip. */
static void check_round_trip(json_t *root)
{
    const char *key;
    json_t *v;

    json_object_foreach(root, key, v)
    {
        struct buf b;
        struct emu_form f;
        if (!json_is_string(v) || strchr(key, '[') || strchr(key, ']'))
            continue;
        buf_init(&b, 1 << 20);
        emu_form_init(&f);
        if (emu_form_encode_pair(&b, key, json_string_value(v)) == ERR_OK &&
            (emu_form_parse(&f, buf_str(&b), b.len) != ERR_OK ||
             !json_equal(json_object_get(f.root, key), v)))
            abort();
        emu_form_release(&f);
        buf_release(&b);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct emu_form f;

    emu_form_init(&f);
    if (emu_form_parse(&f, (const char *)data, size) == ERR_OK) {
        check_tree(f.root, 0);
        check_round_trip(f.root);
    } else if (f.error[0] == '\0') {
        abort(); /* a failure always says why */
    }
    emu_form_release(&f);
    return 0;
}
