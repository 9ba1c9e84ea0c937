/*
 * test_emu_persist.c: the emulator's state file (emulator/persist.c): a save and a load give
 * back the same objects, private data, idempotency keys, events and held deliveries; the file
 * is 0600 and rewritten only on change; a corrupt, unknown-version or wrongly shaped file is
 * refused naming the file, and left as it was.
 */
#include "t.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/file.h"
#include "base/str.h"
#include "emu.h"
#include "persist.h"

#define ERR_LEN 1024

static char dir[64];

static void path_in_dir(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", dir, name);
}

/* An emulator whose webhooks go nowhere and are held (shuffled mode): nothing is attempted. */
static struct emu *app_new(const char *state_file)
{
    struct emu_config cfg = { .host = "127.0.0.1",
                              .secret_key = "sk_test_x",
                              .webhook_url = "http://127.0.0.1:1/hook",
                              .webhook_secret = "whsec_test",
                              .premium_price = "price_premium_monthly",
                              .plus_price = "price_plus_monthly" };
    struct emu *app;

    (void)str_copy(cfg.state_file, sizeof(cfg.state_file), state_file);
    app = emu_new(&cfg);
    app->delivery.order = EMU_WEBHOOK_SHUFFLED;
    emu_webhooks_set_delivery(app->wh, &app->delivery);
    return app;
}

/* Some of everything: a customer, its private data, an idempotent answer, two events. */
static void fill(struct emu *app)
{
    const struct emu_idem_request ir = { "sk_test_x", "key-1", "POST", "/v1/customers",
                                         "email=a%40b.c" };
    json_t *cus = json_pack("{s:s,s:s,s:s,s:i}", "id", "cus_persist1", "object", "customer",
                            "email", "a@b.c", "next_invoice_sequence", 3);

    emu_state_put(app->st, EMU_CUSTOMER, cus);
    json_object_set_new(emu_state_private(app->st, "cus_persist1"), "card",
                        json_string("4000000000000002"));
    emu_idem_store(app->idem, &ir, 200, "{\"id\":\"cus_persist1\"}");
    emu_emit(app, "customer.created", cus, NULL, 1700000001);
    emu_emit(app, "customer.updated", cus, NULL, 1700000002);
}

static bool same_json(json_t *a, json_t *b)
{
    bool same = json_equal(a, b);

    json_decref(a);
    json_decref(b);
    return same;
}

static enum err save(struct emu *app, char *err)
{
    pthread_mutex_lock(&app->mu);
    enum err e = emu_persist_save(app, err, ERR_LEN);
    pthread_mutex_unlock(&app->mu);
    return e;
}

static void test_round_trip(void)
{
    char path[128], err[ERR_LEN] = "";
    struct emu *a, *b;
    struct stat st1, st2;
    const struct emu_idem_request ir = { "sk_test_x", "key-1", "POST", "/v1/customers",
                                         "email=a%40b.c" };
    int status = 0;
    char *body = NULL;

    path_in_dir(path, sizeof(path), "state.json");
    a = app_new(path);
    b = app_new(path);
    fill(a);
    T_EQ_I64(save(a, err), ERR_OK, "save: %.300s", err);
    T_OK(stat(path, &st1) == 0 && (st1.st_mode & 0777) == 0600, "the state file is mode 0600");
    T_EQ_I64(emu_persist_load(b, path, err, sizeof(err)), ERR_OK, "load: %.300s", err);
    T_OK(same_json(emu_state_to_json(a->st), emu_state_to_json(b->st)), "same objects");
    T_EQ_STR(json_string_value(json_object_get(emu_state_private(b->st, "cus_persist1"), "card")),
             "4000000000000002", "private data kept");
    T_OK(same_json(emu_webhooks_to_json(a->wh), emu_webhooks_to_json(b->wh)),
         "same events and held deliveries");
    json_t *wst = emu_webhooks_status_json(b->wh);
    T_EQ_I64(json_integer_value(json_object_get(wst, "held")), 2, "two deliveries held");
    json_decref(wst);
    T_EQ_I64(emu_idem_lookup(b->idem, &ir, &status, &body), EMU_IDEM_REPLAY,
             "idempotency key replays");
    T_EQ_STR(body, "{\"id\":\"cus_persist1\"}", "with the first answer");
    free(body);
    T_EQ_I64(save(a, err), ERR_OK, "a second save without changes");
    T_OK(stat(path, &st2) == 0 && st1.st_ino == st2.st_ino, "does not rewrite the file");
    emu_state_put(a->st, EMU_CUSTOMER, json_pack("{s:s}", "id", "cus_persist2"));
    T_EQ_I64(save(a, err), ERR_OK, "a save after a change");
    T_OK(stat(path, &st2) == 0 && st1.st_ino != st2.st_ino, "replaces the file");
    emu_free(a);
    emu_free(b);
    (void)unlink(path); /* the next test starts from nothing */
}

static void test_missing_file(void)
{
    char path[128], err[ERR_LEN] = "";
    struct emu *app;

    path_in_dir(path, sizeof(path), "none.json");
    app = app_new(path);
    T_EQ_I64(emu_persist_load(app, path, err, sizeof(err)), ERR_NOT_FOUND,
             "a missing file: not found, start empty");
    T_OK(emu_state_get(app->st, EMU_PRICE, "price_premium_monthly") != NULL,
         "the seeded prices are there");
    emu_free(app);
}

static void test_bad_files(void)
{
    static const struct {
        const char *content;
        const char *why;
    } rows[] = {
        { "", "not JSON" },
        { "{\"version\":1,", "not JSON" },
        { "[]", "unknown version" },
        { "{\"version\":2,\"state\":{\"objects\":{},\"private\":{}}}", "unknown version" },
        { "{\"version\":\"1\"}", "unknown version" },
        { "{\"version\":1}", "must be JSON objects" },
        { "{\"version\":1,\"state\":{\"objects\":{\"widget\":[]},\"private\":{}}}",
          "unknown object kind 'widget'" },
        { "{\"version\":1,\"state\":{\"objects\":{\"customer\":[{\"email\":\"x\"}]},"
          "\"private\":{}}}",
          "not an object with an id" },
        { "{\"version\":1,\"state\":{\"objects\":{},\"private\":{}},\"idempotency\":{}}",
          "idempotency" },
        { "{\"version\":1,\"state\":{\"objects\":{},\"private\":{}},\"idempotency\":{\"keys\":{},"
          "\"order\":[]},\"webhooks\":{\"events\":[],\"queue\":[{\"event\":\"evt_x\","
          "\"attempts\":0}],\"held\":[]}}",
          "webhooks" },
    };

    char path[128], err[ERR_LEN];

    path_in_dir(path, sizeof(path), "bad.json");
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        struct emu *app = app_new(path);
        struct buf after;
        FILE *f = fopen(path, "w");
        fputs(rows[i].content, f);
        fclose(f);
        err[0] = '\0';
        T_EQ_I64(emu_persist_load(app, path, err, sizeof(err)), ERR_INVALID, "row %zu refused", i);
        T_OK(strstr(err, path) && strstr(err, rows[i].why),
             "row %zu: names the file and '%s': %.300s", i, rows[i].why, err);
        buf_init(&after, 4096);
        T_OK(file_read_all(path, &after, err, sizeof(err)) == ERR_OK &&
                 strcmp(buf_str(&after), rows[i].content) == 0,
             "row %zu: the file is left as it was", i);
        buf_release(&after);
        emu_free(app);
    }
    (void)unlink(path);
}

static void test_unwritable(void)
{
    char path[128], err[ERR_LEN] = "";
    struct emu *app;

    path_in_dir(path, sizeof(path), "no/such/dir/state.json");
    app = app_new(path);
    T_EQ_I64(save(app, err), ERR_INTERNAL, "a file that cannot be written fails");
    T_OK(strstr(err, path) != NULL, "naming it: %.300s", err);
    emu_free(app);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/test_emu_persist.XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    test_round_trip();
    test_missing_file();
    test_bad_files();
    test_unwritable();
    (void)rmdir(dir);
    return t_done();
}
