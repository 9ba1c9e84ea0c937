/* test_dotenv.c: the .env grammar, one row per case: text in, pairs or the failing line out. */
#include "base/buf.h"
#include "config/dotenv.h"
#include "t.h"

#define NO_EQ "missing '=' after the key (not shown: it may be a pasted value)"

static const struct {
    const char *text;
    size_t len;       /* 0: strlen(text) */
    const char *want; /* the pairs as "KEY=VALUE|..." when err_line is 0 */
    int err_line;     /* the expected failing line, 0 for success */
    const char *msg;  /* the expected message, NULL to skip the check */
} rows[] = {
    { "A=1\nB=2\n", 0, "A=1|B=2|", 0, NULL },
    { "A=1", 0, "A=1|", 0, NULL },
    { "", 0, "", 0, NULL },
    { "\n# comment\n  # indented comment\n\nA=1\n\n", 0, "A=1|", 0, NULL },
    { "export A=1\nexport\tB=2\n", 0, "A=1|B=2|", 0, NULL },
    { "export=1\nexportX=2\n", 0, "export=1|exportX=2|", 0, NULL },
    { "A = 1 \n\tB\t=\t2\t\n", 0, "A=1|B=2|", 0, NULL },
    { "_a9=x\n", 0, "_a9=x|", 0, NULL },
    { "A=1 # comment\nB=x#y\nC= #comment\nD=#x\n", 0, "A=1|B=x#y|C=|D=#x|", 0, NULL },
    { "A=b=c\nB=it's\nC=a \"b\" c\n", 0, "A=b=c|B=it's|C=a \"b\" c|", 0, NULL },
    { "A=\nB=''\nC=\"\"\n", 0, "A=|B=|C=|", 0, NULL },
    { "A='a b # c \\n'\n", 0, "A=a b # c \\n|", 0, NULL },
    { "A=\"x\\ny\\tz\\\"q\\\\\"\n", 0, "A=x\ny\tz\"q\\|", 0, NULL },
    { "A=\"C:\\path\\x\"\n", 0, "A=C:\\path\\x|", 0, NULL },
    { "A=\"a'b\"\nB='a\"b'\n", 0, "A=a'b|B=a\"b|", 0, NULL },
    { "A='x' # comment\nB=\"y\"#comment\nC = 'z'  \n", 0, "A=x|B=y|C=z|", 0, NULL },
    { "A=1\r\nB='2'\r\n\r\nC=\"3\"\r\n", 0, "A=1|B=2|C=3|", 0, NULL },
    { "A=1\nA=2\n", 0, "A=1|A=2|", 0, NULL },
    { "A=1\nTHIS IS NOT AN ASSIGNMENT\n", 0, NULL, 2, NO_EQ },
    { "A", 0, NULL, 1, NO_EQ },
    { "A=1\n\n1A=secret\n", 0, NULL, 3, NULL },
    { "A=1\nsk_live_0123456789abcdefSECRET\n", 0, NULL, 2, NO_EQ },
    { "A-B=secret\n", 0, NULL, 1, "invalid key: only letters, digits and '_' may come before '='" },
    { "=secret\n", 0, NULL, 1, NULL },
    { "export  \n", 0, NULL, 1, NULL },
    { "export\n", 0, NULL, 1, NO_EQ },
    { "A='secret\n", 0, NULL, 1, "unterminated single quote" },
    { "A=\"secret\n", 0, NULL, 1, "unterminated double quote" },
    { "A=\"secret\\\"\n", 0, NULL, 1, "unterminated double quote" },
    { "A=\"secret\nrest\"\n", 0, NULL, 1, "unterminated double quote" },
    { "A='x' secret\n", 0, NULL, 1, "unexpected text after the closing quote" },
    { "A=\"x\"secret\n", 0, NULL, 1, "unexpected text after the closing quote" },
    { "A=1\nB=se\0cret\n", 14, NULL, 2, "NUL byte in the line" },
    { "A=1\n\0", 5, NULL, 2, "NUL byte in the line" },
    { "A=1\r\nB\r\n", 0, NULL, 2, NO_EQ },
};

/* Records each pair as "KEY=VALUE|"; fails on the key STOP to show that errors propagate. */
static enum err record(void *ctx, const char *key, const char *value)
{
    struct buf *b = ctx;

    if (strcmp(key, "STOP") == 0)
        return ERR_TOO_LARGE;
    return buf_appendf(b, "%s=%s|", key, value);
}

static void test_rows(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        size_t len = rows[i].len ? rows[i].len : strlen(rows[i].text);
        struct buf got;
        char msg[128] = "unset";
        int line = -1;

        buf_init(&got, 4096);
        enum err e = dotenv_parse(rows[i].text, len, record, &got, &line, msg, sizeof(msg));
        T_EQ_I64(line, rows[i].err_line, "row %zu: error line", i);
        T_EQ_I64(e, rows[i].err_line ? ERR_INVALID : ERR_OK, "row %zu: result", i);
        if (!rows[i].err_line)
            T_EQ_STR(buf_str(&got), rows[i].want, "row %zu: pairs", i);
        else
            T_OK(msg[0] && !strstr(msg, "secret"), "row %zu: reason given, no value ('%s')", i,
                 msg);
        if (rows[i].msg)
            T_EQ_STR(msg, rows[i].msg, "row %zu: message", i);
        buf_release(&got);
    }
}

static const struct {
    const char *text;
    int err_line; /* where the callback said stop, 0 when it never did */
    const char *want;
} stop_rows[] = {
    { "A=1\nSTOP=x\nB=2\n", 2, "A=1|" },
    { "STOP=x\n", 1, "" },
    { "A=1\n# STOP=x\n", 0, "A=1|" },
};

static void test_callback_stops(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(stop_rows); i++) {
        struct buf got;
        char msg[64] = "unset";
        int line = -1;

        buf_init(&got, 4096);
        enum err e = dotenv_parse(stop_rows[i].text, strlen(stop_rows[i].text), record, &got, &line,
                                  msg, sizeof(msg));
        T_EQ_I64(e, stop_rows[i].err_line ? ERR_TOO_LARGE : ERR_OK, "stop %zu: result", i);
        T_EQ_I64(line, stop_rows[i].err_line, "stop %zu: line", i);
        T_EQ_STR(msg, "", "stop %zu: no message of its own", i);
        T_EQ_STR(buf_str(&got), stop_rows[i].want, "stop %zu: pairs before the stop", i);
        buf_release(&got);
    }
}

int main(void)
{
    test_rows();
    test_callback_stops();
    return t_done();
}
