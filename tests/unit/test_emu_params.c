/* test_emu_params.c: the emulator's parameter check (emulator/params.c) over decoded forms. */
#include <jansson.h>

#include "params.h"
#include "t.h"

static const struct emu_param item_fields[] = {
    { "price", EP_STRING, false, NULL, NULL },
    { "quantity", EP_INT, false, NULL, NULL },
    { NULL, EP_ANY, false, NULL, NULL },
};

static const struct emu_param spec[] = {
    { "mode", EP_STRING, true, NULL, "payment|subscription" },
    { "items", EP_OBJECTS, false, item_fields, NULL },
    { "metadata", EP_METADATA, false, NULL, NULL },
    { "expand", EP_STRINGS, false, NULL, NULL },
    { "flag", EP_BOOL, false, NULL, NULL },
    { "other", EP_ANY, false, NULL, NULL },
    { NULL, EP_ANY, false, NULL, NULL },
};

/* Parameters as form.c decodes them: objects, arrays and strings only. */
struct check_case {
    const char *params;
    const char *message; /* NULL = accepted */
};

static const struct check_case check_cases[] = {
    { "{\"mode\":\"payment\",\"items\":[{\"price\":\"p\",\"quantity\":\"2\"}],\"metadata\":{\"a\":\"b\"},\"expand\":[\"x\"]}",
      NULL },
    { "{\"mode\":\"payment\",\"metadata\":\"\",\"flag\":\"true\",\"other\":{\"deep\":{\"x\":\"1\"}}}",
      NULL },
    { "{\"items\":[{\"price\":\"p\"}]}", "Missing required param: mode." },
    { "{\"mode\":\"payment\",\"foo\":\"1\"}", "Received unknown parameter: foo" },
    { "{\"mode\":\"payment\",\"items\":[{\"bogus\":\"1\"}]}",
      "Received unknown parameter: items[0][bogus]" },
    { "{\"mode\":\"payment\",\"items\":[{\"quantity\":\"abc\"}]}", "Invalid integer: abc" },
    { "{\"mode\":\"payment\",\"flag\":\"yes\"}", "Invalid boolean: yes" },
    { "{\"mode\":\"setup\"}", "Invalid mode: must be one of payment|subscription" },
    { "{\"mode\":\"payment\",\"metadata\":\"x\"}", "Invalid hash: metadata" },
    { "{\"mode\":\"payment\",\"metadata\":{\"a\":{\"b\":\"1\"}}}",
      "Invalid metadata value for 'a': must be a string" },
    { "{\"mode\":\"payment\",\"items\":\"1\"}", "Invalid array: items" },
    { "{\"mode\":{\"x\":\"1\"}}", "Invalid string: mode" },
};

static void test_check(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(check_cases); i++) {
        const struct check_case *c = &check_cases[i];
        struct emu_param_error pe = { "", "" };
        json_t *params = json_loads(c->params, 0, NULL);
        enum err e;

        T_OK(params != NULL, "case %zu is valid JSON", i);
        e = emu_params_check(spec, params, &pe);
        if (c->message)
            T_EQ_STR(pe.message, c->message, "%s is refused", c->params);
        else
            T_OK(e == ERR_OK, "%s is accepted (%s)", c->params, pe.message);
        json_decref(params);
    }
}

int main(void)
{
    test_check();
    return t_done();
}
