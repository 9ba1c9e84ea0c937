/* test_stripe_form.c: form encoding in Stripe's bracket notation, percent-encoding, the cap. */
#include "stripe/form.h"
#include "t.h"

static const struct {
    const char *key;
    const char *value;
    const char *want;
} pairs[] = {
    { "email", "jenny@example.com", "email=jenny%40example.com" },
    { "name", "Jenny Rosen", "name=Jenny%20Rosen" },
    { "metadata[user_id]", "u_42", "metadata[user_id]=u_42" },
    { "line_items[0][price]", "price_123", "line_items[0][price]=price_123" },
    { "subscription_data[metadata][user_id]", "u-1.x~y",
      "subscription_data[metadata][user_id]=u-1.x~y" },
    { "expand[]", "subscription", "expand[]=subscription" },
    { "success_url", "https://a.example/ok?session_id={CHECKOUT_SESSION_ID}&x=1",
      "success_url=https%3A%2F%2Fa.example%2Fok%3Fsession_id%3D%7BCHECKOUT_SESSION_ID%7D%26x%3D1" },
    { "q", "a+b=c&d;e/f", "q=a%2Bb%3Dc%26d%3Be%2Ff" },
    { "q", "100% [sure]", "q=100%25%20%5Bsure%5D" },
    { "name", "J\xc3\xbcrgen \xe2\x82\xac", "name=J%C3%BCrgen%20%E2%82%AC" },
    { "q", "tab\there\nnl", "q=tab%09here%0Anl" },
    { "empty", "", "empty=" },
    { "metadata[a b]", "1", "metadata[a%20b]=1" },
};

static void test_pairs(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(pairs); i++) {
        struct form f;

        form_init(&f, FORM_MAX_DEFAULT);
        form_add(&f, pairs[i].key, pairs[i].value);
        T_EQ_I64(form_err(&f), ERR_OK, "pair %zu adds", i);
        T_EQ_STR(form_str(&f), pairs[i].want, "%s encodes", pairs[i].key);
        form_release(&f);
    }
}

static void test_many_pairs_joined(void)
{
    static const char *const sub_user[] = { "subscription_data", "metadata", "user_id" };
    struct form f;

    form_init(&f, FORM_MAX_DEFAULT);
    form_add(&f, "mode", "subscription");
    form_add_i64(&f, "line_items[0][quantity]", 1);
    form_add_bool(&f, "cancel_at_period_end", true);
    form_add_bool(&f, "livemode", false);
    form_add_path(&f, sub_user, ARRAY_SIZE(sub_user), "u 1");
    form_add_i64(&f, "n", -42);
    T_EQ_I64(form_err(&f), ERR_OK, "several pairs add");
    T_EQ_STR(form_str(&f),
             "mode=subscription&line_items[0][quantity]=1&cancel_at_period_end=true&"
             "livemode=false&subscription_data[metadata][user_id]=u%201&n=-42",
             "pairs are joined with &");
    T_EQ_I64(form_len(&f), strlen(form_str(&f)), "form_len is the encoded length");
    form_release(&f);
    T_EQ_STR(form_str(&f), "", "a released form is empty");
}

static const struct {
    const char *segments[4];
    size_t n;
    const char *want;
} paths[] = {
    { { "expand", "" }, 2, "expand[]=v" },
    { { "line_items", "0", "price" }, 3, "line_items[0][price]=v" },
    { { "metadata", "odd]key[" }, 2, "metadata[odd%5Dkey%5B]=v" },
    { { "metadata", "caf\xc3\xa9" }, 2, "metadata[caf%C3%A9]=v" },
    { { "plain" }, 1, "plain=v" },
};

static void test_paths(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
        struct form f;

        form_init(&f, FORM_MAX_DEFAULT);
        form_add_path(&f, paths[i].segments, paths[i].n, "v");
        T_EQ_STR(form_str(&f), paths[i].want, "path %zu encodes", i);
        form_release(&f);
    }
}

static void test_every_byte(void)
{
    struct buf b;
    int plain = 0;

    buf_init(&b, 4096);
    for (int c = 1; c < 256; c++) {
        char ch = (char)c;
        buf_reset(&b);
        T_OK(form_encode(&b, &ch, 1, false) == ERR_OK, "byte %d encodes", c);
        plain += b.len == 1;
        if (b.len != 1 && b.len != 3)
            T_OK(0, "byte %d encodes to 1 or 3 bytes", c);
    }
    T_EQ_I64(plain, 66, "exactly the 66 unreserved bytes stay as they are");
    buf_release(&b);
}

static void test_cap(void)
{
    struct form f;

    form_init(&f, 16);
    form_add(&f, "a", "0123456789");
    T_EQ_I64(form_err(&f), ERR_OK, "12 bytes fit a 16-byte cap");
    form_add(&f, "b", "0123456789");
    T_EQ_I64(form_err(&f), ERR_TOO_LARGE, "past the cap: ERR_TOO_LARGE");
    form_add(&f, "c", "1");
    T_EQ_I64(form_err(&f), ERR_TOO_LARGE, "the first failure sticks");
    form_release(&f);
    T_EQ_I64(form_err(&f), ERR_OK, "release clears the failure");
}

int main(void)
{
    test_pairs();
    test_many_pairs_joined();
    test_paths();
    test_every_byte();
    test_cap();
    return t_done();
}
