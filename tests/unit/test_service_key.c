/* test_service_key.c: unit tests of auth/service_key (parsing SERVICE_API_KEYS, matching). */
#include <stdio.h>
#include <string.h>

#include "auth/service_key.h"
#include "t.h"

#define K1 "svc_key_one_0123456789"
#define K2 "svc_key_two_abcdefghij"
#define K3 "0123456789abcdef" /* exactly SERVICE_KEY_MIN_LEN */

static const struct {
    const char *list;
    enum err want;
    size_t count;        /* keys when ERR_OK */
    const char *errtext; /* substring of the message otherwise */
} parse_rows[] = {
    { K1, ERR_OK, 1, NULL },
    { K1 "," K2, ERR_OK, 2, NULL },
    { "  " K1 " ,\t" K2 "\t, " K3 " ", ERR_OK, 3, NULL },
    { "", ERR_INVALID, 0, "service key 1 of the list is empty" },
    { "   ", ERR_INVALID, 0, "service key 1 of the list is empty" },
    { K1 ",", ERR_INVALID, 0, "service key 2 of the list is empty" },
    { "," K1, ERR_INVALID, 0, "service key 1 of the list is empty" },
    { K1 ",," K2, ERR_INVALID, 0, "service key 2 of the list is empty" },
    { K1 ", ," K2, ERR_INVALID, 0, "service key 2 of the list is empty" },
    { "0123456789abcde", ERR_INVALID, 0, "service key 1 of the list is shorter than 16 bytes" },
    { K1 ",short", ERR_INVALID, 0, "service key 2 of the list is shorter than 16 bytes" },
    { "svc_key with_space_01", ERR_INVALID, 0, "holds a space" },
    { "svc_key_\x01_control_01", ERR_INVALID, 0, "holds a space" },
    { "svc_key_\xc3\xa9_utf8_0123", ERR_INVALID, 0, "holds a space" },
    { K3 "," K3 "," K3 "," K3 "," K3 "," K3 "," K3 "," K3 "," K3 "," K3 "," K3 "," K3 "," K3 "," K3
         "," K3 "," K3,
      ERR_OK, SERVICE_KEYS_MAX, NULL },
    { K3 "," K3 "," K3 "," K3 "," K3 "," K3 "," K3 "," K3 "," K3 "," K3 "," K3 "," K3 "," K3 "," K3
         "," K3 "," K3 "," K3,
      ERR_INVALID, 0, "more than 16 service keys" },
};

static void test_parse(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(parse_rows); i++) {
        struct service_keys k = { 0 };
        char errbuf[256] = "";
        enum err err = service_keys_parse(&k, parse_rows[i].list, errbuf, sizeof(errbuf));
        T_EQ_I64(err, parse_rows[i].want, "parse row %zu (%s)", i, errbuf);
        T_EQ_I64(k.count, parse_rows[i].count, "parse row %zu: count", i);
        if (parse_rows[i].errtext)
            T_OK(strstr(errbuf, parse_rows[i].errtext) != NULL, "parse row %zu: message '%s'", i,
                 errbuf);
        service_keys_release(&k);
        T_EQ_I64(k.count, 0, "parse row %zu: released", i);
    }
}

/* The message names the entry, never its bytes. */
static void test_message_hides_key(void)
{
    struct service_keys k = { 0 };
    char errbuf[256] = "";

    T_EQ_I64(service_keys_parse(&k, K1 ",tiny_secret", errbuf, sizeof(errbuf)), ERR_INVALID,
             "hidden: refused");
    T_OK(strstr(errbuf, "tiny_secret") == NULL && strstr(errbuf, K1) == NULL,
         "hidden: message '%s' quotes no key", errbuf);
    service_keys_release(&k);
}

static const struct {
    const char *presented;
    size_t len; /* 0: strlen(presented) */
    bool want;
} match_rows[] = {
    { K1, 0, true },
    { K2, 0, true },
    { K3, 0, true },
    { "", 0, false },
    { NULL, 0, false },
    { K1 "x", 0, false },
    { "svc_key_one_012345678", 0, false },  /* K1 minus its last byte */
    { "svc_key_one_0123456780", 0, false }, /* K1 with its last byte changed */
    { "Svc_key_one_0123456789", 0, false },
    { " " K1, 0, false },
    { K1 "," K2, 0, false },
    { K1 "trailing", sizeof(K1) - 1, true }, /* <ptr, len>: only len bytes count */
    { K2, sizeof(K2) - 2, false },
};

static void test_match(void)
{
    struct service_keys k = { 0 };
    char errbuf[256] = "";

    T_EQ_I64(service_keys_parse(&k, K1 ", " K2 "," K3, errbuf, sizeof(errbuf)), ERR_OK,
             "match: parse (%s)", errbuf);
    for (size_t i = 0; i < ARRAY_SIZE(match_rows); i++) {
        const char *p = match_rows[i].presented;
        size_t len = match_rows[i].len ? match_rows[i].len : p ? strlen(p) : 0;
        T_EQ_I64(service_keys_match(&k, p, len), match_rows[i].want, "match row %zu '%s'", i,
                 p ? p : "(null)");
    }
    service_keys_release(&k);
    T_OK(!service_keys_match(&k, K1, strlen(K1)), "match: released set matches nothing");
}

static void test_empty_set(void)
{
    struct service_keys k = { 0 };

    T_OK(!service_keys_match(&k, K1, strlen(K1)), "empty set matches nothing");
    T_OK(!service_keys_match(&k, "", 0), "empty set does not match empty input");
    service_keys_release(&k);
}

int main(void)
{
    test_parse();
    test_message_hides_key();
    test_match();
    test_empty_set();
    return t_done();
}
