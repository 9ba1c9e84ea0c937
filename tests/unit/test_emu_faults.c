/*
 * test_emu_faults.c: the emulator's fault injector (emulator/faults.c): the control API's body
 * as a table of accepted and refused configurations, the method and path filter (a request of
 * another route neither fails nor counts), and the saved 500 modes, whose answer the idempotency
 * layer keeps and replays like any other (emulator/idempotency.c).
 */
#include <stdlib.h>

#include "faults.h"
#include "idempotency.h"
#include "t.h"

static void test_parse(void)
{
    static const struct {
        const char *body;
        enum err want;
        enum emu_fault_mode mode;
        const char *path;
    } cases[] = {
        { "{\"mode\":\"500\"}", ERR_OK, EMU_FAULT_500, "" },
        { "{\"mode\":\"500_saved\",\"path\":\"/v1/customers\"}", ERR_OK, EMU_FAULT_500_SAVED,
          "/v1/customers" },
        { "{\"mode\":\"500_applied\",\"method\":\"POST\"}", ERR_OK, EMU_FAULT_500_APPLIED, "" },
        { "{\"mode\":\"none\"}", ERR_OK, EMU_FAULT_NONE, "" },
        { "{\"mode\":\"500_later\"}", ERR_INVALID, EMU_FAULT_NONE, "" },
        { "{\"mode\":\"500_saved\",\"path\":7}", ERR_INVALID, EMU_FAULT_500_SAVED, "" },
        { "{\"mode\":\"500_saved\",\"method\":\"PROPFINDX\"}", ERR_INVALID, EMU_FAULT_500_SAVED,
          "" },
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        json_t *body = json_loads(cases[i].body, 0, NULL);
        struct emu_fault_config c;
        char err[256] = "";
        enum err got = emu_fault_config_parse(body, &c, err, sizeof(err));

        T_EQ_I64(got, cases[i].want, "parse %s", cases[i].body);
        if (got == ERR_OK) {
            T_EQ_I64(c.mode, cases[i].mode, "mode of %s", cases[i].body);
            T_EQ_STR(c.path, cases[i].path, "path of %s", cases[i].body);
        }
        json_decref(body);
    }
}

/* A filtered fault fails only its route, and only its route counts it down. */
static void test_filter(void)
{
    struct emu_faults *f = emu_faults_new(1);
    struct emu_fault_config c = { .mode = EMU_FAULT_500_SAVED,
                                  .count = 1,
                                  .method = "POST",
                                  .path = "/v1/customers" };
    int64_t delay_ms = 0;

    emu_faults_set(f, &c);
    T_EQ_I64(emu_faults_next(f, "GET", "/v1/customers", &delay_ms), EMU_FAULT_NONE,
             "another method passes");
    T_EQ_I64(emu_faults_next(f, "POST", "/v1/checkout/sessions", &delay_ms), EMU_FAULT_NONE,
             "another path passes");
    T_EQ_I64(emu_faults_next(f, "POST", "/v1/customers", &delay_ms), EMU_FAULT_500_SAVED,
             "the route fails");
    T_EQ_I64(emu_faults_next(f, "POST", "/v1/customers", &delay_ms), EMU_FAULT_NONE,
             "once: the others did not count");
    json_t *j = emu_faults_json(f);
    T_EQ_STR(json_string_value(json_object_get(j, "mode")), "500_saved", "json names the mode");
    T_EQ_STR(json_string_value(json_object_get(j, "path")), "/v1/customers", "json has the path");
    json_decref(j);
    emu_faults_free(f);
}

/* The 500 a saved fault answered is replayed to the key, as Stripe does for 24 hours. */
static void test_saved_500_replays(void)
{
    struct emu_idem *m = emu_idem_new();
    struct emu_idem_request r = { "sk_test", "key-1", "POST", "/v1/customers", "email=a" };
    struct emu_idem_request other = { "sk_test", "key-1~1", "POST", "/v1/customers", "email=a" };
    int status = 0;
    char *body = NULL;

    emu_idem_store(m, &r, 500, "{\"error\":{\"type\":\"api_error\"}}");
    T_EQ_I64(emu_idem_lookup(m, &r, &status, &body), EMU_IDEM_REPLAY, "the key replays");
    T_EQ_I64(status, 500, "the saved 500");
    T_OK(body && strstr(body, "api_error"), "the saved body");
    free(body);
    body = NULL;
    T_EQ_I64(emu_idem_lookup(m, &other, &status, &body), EMU_IDEM_NEW, "another key is new");
    emu_idem_free(m);
}

int main(void)
{
    test_parse();
    test_filter();
    test_saved_500_replays();
    return t_done();
}
