/* test_emu_form.c: the emulator's form decoder (emulator/form.c): decoding, caps, encoding. */
#include <string.h>

#include <jansson.h>

#include "form.h"
#include "t.h"

struct decode_case {
    const char *body;
    const char *json; /* compact JSON of the tree; NULL = must fail */
};

static const struct decode_case decode_cases[] = {
    { "", "{}" },
    { "a=1", "{\"a\": \"1\"}" },
    { "a=1&&b=", "{\"a\": \"1\", \"b\": \"\"}" },
    { "flag", "{\"flag\": \"\"}" },
    { "a=x+y%21", "{\"a\": \"x y!\"}" },
    { "a=1&a=2", "{\"a\": \"2\"}" },
    { "m[user_id]=u1&m[x]=2", "{\"m\": {\"user_id\": \"u1\", \"x\": \"2\"}}" },
    { "m%5Bk%5D=v", "{\"m\": {\"k\": \"v\"}}" },
    { "expand[]=a&expand[]=b", "{\"expand\": [\"a\", \"b\"]}" },
    { "li[0][price]=p&li[0][quantity]=1&li[1][price]=q",
      "{\"li\": [{\"price\": \"p\", \"quantity\": \"1\"}, {\"price\": \"q\"}]}" },
    { "s[metadata][user_id]=u1", "{\"s\": {\"metadata\": {\"user_id\": \"u1\"}}}" },
    { "e=%C3%A9", "{\"e\": \"\\u00e9\"}" },
    { "a=1&a[b]=2", NULL },
    { "a[b]=1&a=2", NULL },
    { "a[b]=1&a[]=2", NULL },
    { "li[1][price]=p", NULL },
    { "li[x=1", NULL },
    { "a]b=1", "{\"a]b\": \"1\"}" },
    { "[a]=1", NULL },
    { "=1", NULL },
    { "a=%zz", NULL },
    { "a=%4", NULL },
    { "a=%00", NULL },
    { "a=%FF", NULL },
    { "a[b][c][d][e][f][g]=1", NULL },
    { "a[b][c][d][e][f]=1", "{\"a\": {\"b\": {\"c\": {\"d\": {\"e\": {\"f\": \"1\"}}}}}}" },
};

static void test_decode(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(decode_cases); i++) {
        const struct decode_case *c = &decode_cases[i];
        struct emu_form f;
        enum err e;

        emu_form_init(&f);
        e = emu_form_parse(&f, c->body, strlen(c->body));
        if (!c->json) {
            T_OK(e == ERR_INVALID && f.error[0], "'%s' is refused (%s)", c->body, f.error);
        } else {
            json_t *want = json_loads(c->json, 0, NULL);
            T_OK(e == ERR_OK && json_equal(f.root, want), "'%s' decodes to %s", c->body, c->json);
            json_decref(want);
        }
        emu_form_release(&f);
    }
}

static void test_caps(void)
{
    struct emu_form f;
    char key[EMU_FORM_MAX_KEY + 8];
    enum err e = ERR_OK;

    emu_form_init(&f);
    for (int i = 0; i <= EMU_FORM_MAX_PAIRS && e == ERR_OK; i++) {
        char k[32];
        snprintf(k, sizeof(k), "k%d", i);
        e = emu_form_add(&f, k, "v");
    }
    T_OK(e == ERR_INVALID, "more than %d pairs are refused", EMU_FORM_MAX_PAIRS);
    emu_form_release(&f);

    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    emu_form_init(&f);
    T_OK(emu_form_add(&f, key, "v") == ERR_INVALID, "a key past %d bytes is refused",
         EMU_FORM_MAX_KEY);
    emu_form_release(&f);

    emu_form_init(&f);
    T_OK(emu_form_add(&f, "a[1001]", "v") == ERR_INVALID, "an index past the cap is refused");
    emu_form_release(&f);
}

static void test_encode(void)
{
    struct buf b;

    buf_init(&b, 1024);
    T_OK(emu_form_encode_pair(&b, "m[k]", "a b&c=é") == ERR_OK, "encode one pair");
    T_OK(emu_form_encode_pair(&b, "x", "") == ERR_OK, "encode a second pair");
    T_EQ_STR(buf_str(&b), "m[k]=a%20b%26c%3D%C3%A9&x=", "pairs are percent-encoded");
    buf_release(&b);
}

int main(void)
{
    test_decode();
    test_caps();
    test_encode();
    return t_done();
}
