/*
 * test_jw.c: the tree-less JSON writer (base/jw.h) writes the bytes jansson's
 * json_dumps(JSON_COMPACT) writes for the same object: every ASCII byte, UTF-8 of every
 * length, integers at their limits, nesting, and seeded random documents; a string jansson
 * refuses (not UTF-8, or holding a NUL) makes the whole document fail.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/jw.h"
#include "base/str.h"
#include "t.h"

/* json_dumps of j (consumed), or NULL when j is NULL. */
static char *dumped(json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

    json_decref(j);
    return s;
}

static void same_string(const char *value, const char *what)
{
    struct jw w;
    size_t len;
    char *ours, *theirs;
    json_t *s = json_string(value);

    jw_begin(&w);
    jw_str(&w, "k", value);
    ours = jw_finish(&w, &len);
    theirs = s ? dumped(json_pack("{s:o}", "k", s)) : NULL;
    if (theirs)
        T_EQ_STR(ours ? ours : "(null)", theirs, "%s", what);
    else
        T_OK(ours == NULL, "%s: refused like json_string", what);
    T_OK(!ours || len == strlen(ours), "%s: length", what);
    free(ours);
    free(theirs);
}

static void test_strings(void)
{
    char s[8];

    for (int c = 1; c < 256; c++) {
        char what[32];
        snprintf(what, sizeof(what), "byte 0x%02x", c);
        snprintf(s, sizeof(s), "a%cb", c);
        same_string(s, what);
    }
    same_string("", "empty");
    same_string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "2, 3 and 4 bytes");
    same_string("\xc0\xaf", "overlong");
    same_string("\xed\xa0\x80", "surrogate");
    same_string("\xf4\x90\x80\x80", "past U+10FFFF");
    same_string("\xe2\x82", "cut short");
    same_string("\"quoted\" \\back/slash\\ \x7f", "quotes, backslashes, slash, DEL");
}

/* str_i64 (the numbers of jw and the access log) against printf, at the edges. */
static void test_i64_text(void)
{
    static const int64_t nums[] = {
        0, 9, 10, -10, 1234567890, INT64_MAX, INT64_MIN, INT64_MIN + 1
    };

    for (size_t i = 0; i < ARRAY_SIZE(nums); i++) {
        char ours[STR_I64_MAX], want[32];
        size_t n = str_i64(ours, nums[i]);
        snprintf(want, sizeof(want), "%" PRId64, nums[i]);
        T_EQ_STR(ours, want, "str_i64 of %s", want);
        T_EQ_I64((int64_t)n, (int64_t)strlen(want), "its length, %s", want);
    }
}

/* str_for_terminal (the CLI's reports): control bytes as \xNN, the rest as is, cut to fit. */
static void test_terminal_text(void)
{
    char out[16];

    T_EQ_STR(str_for_terminal(out, sizeof(out), "plain text"), "plain text", "plain text kept");
    T_EQ_STR(str_for_terminal(out, sizeof(out), "a\nb\tc\x1b"), "a\\x0ab\\x09c\\x1b",
             "line break, tab, escape");
    T_EQ_STR(str_for_terminal(out, sizeof(out), "\x7f\xc3\xa9"), "\\x7f\xc3\xa9",
             "DEL escaped, UTF-8 kept");
    T_EQ_STR(str_for_terminal(out, sizeof(out), "0123456789abcdefXYZ"), "0123456789abcde",
             "cut to fit, terminated");
    T_EQ_STR(str_for_terminal(out, sizeof(out), "0123456789ab\n"), "0123456789ab",
             "an escape that does not fit is left out whole");
}

static void test_members(void)
{
    static const int64_t nums[] = { 0, 1, -1, INT64_MAX, INT64_MIN, 86400, -999999999999 };
    struct jw w;
    size_t len;
    char *ours, *theirs;
    json_t *j = json_object(), *in = json_object();

    jw_begin(&w);
    for (size_t i = 0; i < ARRAY_SIZE(nums); i++) {
        char key[8];
        snprintf(key, sizeof(key), "n%zu", i);
        jw_i64(&w, key, nums[i]);
        json_object_set_new(j, key, json_integer(nums[i]));
    }
    jw_bool(&w, "t", true);
    jw_bool(&w, "f", false);
    jw_null(&w, "z");
    jw_str(&w, "s", NULL);
    jw_object(&w, "inner");
    jw_i64(&w, "a", 1);
    jw_object(&w, "deeper");
    jw_end(&w);
    jw_str(&w, "b", "x");
    jw_end(&w);
    jw_i64(&w, "after", 2);
    json_object_set_new(j, "t", json_true());
    json_object_set_new(j, "f", json_false());
    json_object_set_new(j, "z", json_null());
    json_object_set_new(j, "s", json_null());
    json_object_set_new(in, "a", json_integer(1));
    json_object_set_new(in, "deeper", json_object());
    json_object_set_new(in, "b", json_string("x"));
    json_object_set_new(j, "inner", in);
    json_object_set_new(j, "after", json_integer(2));
    ours = jw_finish(&w, &len);
    theirs = dumped(j);
    T_EQ_STR(ours, theirs, "integers, booleans, nulls and nested objects");
    free(ours);
    free(theirs);
}

/* A deterministic generator, so a failure names the seed that made it. */
static uint64_t rnd_state;

static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

static void random_text(char *s, size_t cap)
{
    static const char *const pieces[] = { "a",
                                          "Z",
                                          "_",
                                          " ",
                                          "\"",
                                          "\\",
                                          "\n",
                                          "\x01",
                                          "\x1f",
                                          "/",
                                          "\xc3\xa9",
                                          "\xe2\x82\xac",
                                          "\xf0\x9f\x98\x80" };
    size_t n = rnd() % 12, used = 0;

    s[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *p = pieces[rnd() % ARRAY_SIZE(pieces)];
        if (used + strlen(p) + 1 > cap)
            break;
        memcpy(s + used, p, strlen(p) + 1);
        used += strlen(p);
    }
}

static void random_members(struct jw *w, json_t *j, int depth)
{
    size_t n = rnd() % 6;

    for (size_t i = 0; i < n; i++) {
        char key[48], text[48];
        snprintf(key, sizeof(key), "%zu_", i); /* unique per object: jansson would replace */
        random_text(key + strlen(key), sizeof(key) - strlen(key));
        switch (rnd() % 5) {
        case 0:
            random_text(text, sizeof(text));
            jw_str(w, key, text);
            json_object_set_new(j, key, json_string(text));
            break;
        case 1: {
            int64_t v = (int64_t)rnd();
            jw_i64(w, key, v);
            json_object_set_new(j, key, json_integer(v));
            break;
        }
        case 2:
            jw_bool(w, key, rnd() & 1);
            json_object_set_new(j, key,
                                json_boolean(strcmp(w->b.data + w->b.len - 4, "true") == 0));
            break;
        case 3:
            jw_null(w, key);
            json_object_set_new(j, key, json_null());
            break;
        default:
            if (depth < 3) {
                json_t *in = json_object();
                jw_object(w, key);
                random_members(w, in, depth + 1);
                jw_end(w);
                json_object_set_new(j, key, in);
            }
        }
    }
}

static void test_random_documents(void)
{
    int differ = 0;

    for (uint64_t seed = 1; seed <= 2000; seed++) {
        struct jw w;
        size_t len;
        char *ours, *theirs;
        json_t *j = json_object();

        rnd_state = seed * 0x9e3779b97f4a7c15ULL;
        jw_begin(&w);
        random_members(&w, j, 0);
        ours = jw_finish(&w, &len);
        theirs = dumped(j);
        if (!ours || !theirs || strcmp(ours, theirs) != 0) {
            if (differ++ == 0)
                T_EQ_STR(ours ? ours : "(null)", theirs ? theirs : "(null)", "seed %llu",
                         (unsigned long long)seed);
        }
        free(ours);
        free(theirs);
    }
    T_EQ_I64(differ, 0, "2,000 random documents written as jansson writes them");
}

int main(void)
{
    test_i64_text();
    test_terminal_text();
    test_strings();
    test_members();
    test_random_documents();
    return t_done();
}
