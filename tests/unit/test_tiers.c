/*
 * test_tiers.c: the tier catalogue: built-in content, lookups, TIERS_FILE validation (one row per
 * rule, with the exact error line) and docs/tiers.example.json against the built-in. Run from the
 * repo root.
 */
#include "base/buf.h"
#include "base/file.h"
#include "base/str.h"
#include "billing/tiers.h"
#include "t.h"

#define EXAMPLE_FILE "docs/tiers.example.json"
#define DOC_MAX      (64 * 1024)

/* The JSON in these rows uses ' for ", so it reads; json_of() swaps them back. */
#define QUOTAS     "'quotas':[{'id':'ai','unit':'minute','window':'day'}]"
#define FREE_PRICE "'price':{'amount':0,'currency':'usd','interval':'month'}"
#define FREE \
    "{'id':'free','name':'Free','rank':0," FREE_PRICE ",'features':['x'],'limits':{'ai':30}}"
#define PAID_WITH(extra)                                                        \
    "{'id':'paid','name':'Paid','rank':1,'checkout':true,'features':['x','y']," \
    "'price':{'amount':500,'currency':'usd','interval':'month'},'limits':{'ai':null}" extra "}"
#define PAID            PAID_WITH("")
#define DOC(tiers)      "{" QUOTAS ",'default_tier':'free','tiers':[" tiers "]}"
#define DOC_Q(q, tiers) "{'quotas':[" q "],'default_tier':'free','tiers':[" tiers "]}"
#define TIER(body)      "{'id':'t','name':'T','rank':5,'features':[],'limits':{'ai':1}," body "}"
#define Q(id)           "{'id':'" id "','unit':'u','window':'week'}"

static const struct {
    const char *json;
    const char *want; /* the error line; "" when the document is valid */
} parse_rows[] = {
    { DOC(FREE "," PAID), "" },
    { DOC(FREE "," TIER("'price':null,'contact_sales':true")), "" },
    { DOC_Q("", FREE), "tiers[0].limits: unknown quota 'ai'" },
    { "{'quotas': [}", "line 1 column 13: unexpected token near '}'" },
    { "", "line 1 column 0: '[' or '{' expected near end of file" },
    { "{'quotas':[],'quotas':[]}", "line 1 column 21: duplicate object key near '\"quotas\"'" },
    { "[]", "must be an object" },
    { "{" QUOTAS ",'default_tier':'free','tiers':[" FREE "],'colour':1}", "unknown key 'colour'" },
    { "{" QUOTAS ",'default_tier':'free'}", "missing key 'tiers'" },
    { "{'a\\u0001b':1}", "unknown key 'a?b'" },
    { "{'quotas':{},'default_tier':'free','tiers':[]}", "quotas: must be an array" },
    { DOC_Q("{'id':'ai','unit':'minute','window':'month'}", FREE), "" },
    { DOC_Q("{'id':'ai','unit':'minute','window':'billing_period'}", FREE), "" },
    { DOC_Q("{'id':'ai','unit':'minute','window':'year'}", FREE),
      "quotas[0].window: must be 'day', 'week', 'month' or 'billing_period'" },
    { DOC_Q("{'id':'ai','unit':'minute','window':'Month'}", FREE),
      "quotas[0].window: must be 'day', 'week', 'month' or 'billing_period'" },
    { DOC_Q("{'id':'ai','unit':'minute','window':1}", FREE),
      "quotas[0].window: must be 'day', 'week', 'month' or 'billing_period'" },
    { DOC_Q("{'id':'AI','unit':'minute','window':'day'}", FREE),
      "quotas[0].id: must be 1 to 31 characters of [a-z0-9_]" },
    { DOC_Q("{'id':'ai','unit':'','window':'day'}", FREE),
      "quotas[0].unit: must be 1 to 31 characters of [a-z0-9_]" },
    { DOC_Q("{'id':'ai','unit':'m','window':'day','reset':1}", FREE),
      "quotas[0]: unknown key 'reset'" },
    { DOC_Q(Q("ai") "," Q("ai"), FREE), "quotas[1].id: duplicate quota 'ai'" },
    { DOC_Q(Q("a") "," Q("b") "," Q("c") "," Q("d") "," Q("e") "," Q("f") "," Q("g") "," Q(
                "h") "," Q("i"),
            FREE),
      "quotas: at most 8 quotas" },
    { DOC_Q(Q("ai") "," Q("sc"), FREE), "tiers[0].limits: missing limit for quota 'sc'" },
    { DOC(""), "tiers: must list at least one tier" },
    { DOC("[]"), "tiers[0]: must be an object" },
    { DOC(FREE "," PAID_WITH(",'colour':'red'")), "tiers[1]: unknown key 'colour'" },
    { DOC("{'id':'free','name':'Free','rank':0," FREE_PRICE ",'features':[]}"),
      "tiers[0]: missing key 'limits'" },
    { DOC(FREE ",{'id':'Big!','name':'B','rank':1,'price':null,'contact_sales':true,"
               "'features':[],'limits':{'ai':1}}"),
      "tiers[1].id: must be 1 to 31 characters of [a-z0-9_]" },
    { DOC(FREE ",{'id':'free','name':'B','rank':1,'price':null,'contact_sales':true,"
               "'features':[],'limits':{'ai':1}}"),
      "tiers[1].id: duplicate tier 'free'" },
    { DOC(FREE ",{'id':'big','name':'B','rank':0,'price':null,'contact_sales':true,"
               "'features':[],'limits':{'ai':1}}"),
      "tiers[1].rank: 0 is also the rank of tier 'free'" },
    { DOC("{'id':'free','name':'','rank':0," FREE_PRICE ",'features':[],'limits':{'ai':1}}"),
      "tiers[0].name: must not be empty" },
    { DOC("{'id':'free','name':'F\\nx','rank':0," FREE_PRICE ",'features':[],'limits':{'ai':1}}"),
      "tiers[0].name: must not contain control characters" },
    { DOC("{'id':'free','name':'0123456789012345678901234567890123456789012345678901234567890123',"
          "'rank':0," FREE_PRICE ",'features':[],'limits':{'ai':1}}"),
      "tiers[0].name: must be at most 63 bytes" },
    { DOC("{'id':'free','name':7,'rank':0," FREE_PRICE ",'features':[],'limits':{'ai':1}}"),
      "tiers[0].name: must be a string" },
    { DOC("{'id':'free','name':'F','rank':'0'," FREE_PRICE ",'features':[],'limits':{'ai':1}}"),
      "tiers[0].rank: must be an integer" },
    { DOC(FREE "," TIER("'price':null,'contact_sales':1")),
      "tiers[1].contact_sales: must be true or false" },
    { DOC(FREE "," TIER("'price':{'amount':-1,'currency':'usd','interval':'month'}")),
      "tiers[1].price.amount: must be an integer >= 0" },
    { DOC(FREE "," TIER("'price':{'amount':9.99,'currency':'usd','interval':'month'}")),
      "tiers[1].price.amount: must be an integer >= 0" },
    { DOC(FREE "," TIER("'price':{'amount':100,'currency':'USD','interval':'month'}")),
      "tiers[1].price.currency: must be 3 lower-case letters" },
    { DOC(FREE "," TIER("'price':{'amount':100,'currency':'us','interval':'month'}")),
      "tiers[1].price.currency: must be 3 lower-case letters" },
    { DOC(FREE "," TIER("'price':{'amount':100,'currency':'usd','interval':'week'}")),
      "tiers[1].price.interval: must be 'month' or 'year'" },
    { DOC(FREE "," TIER("'price':{'amount':100,'currency':'usd'}")),
      "tiers[1].price: missing key 'interval'" },
    { DOC(FREE "," TIER("'price':{'amount':100,'currency':'usd','interval':'year','tax':1}")),
      "tiers[1].price: unknown key 'tax'" },
    { DOC(FREE "," TIER("'price':null")),
      "tiers[1].price: must be an object (null only with contact_sales)" },
    { DOC(FREE "," TIER("'price':{'amount':0,'currency':'usd','interval':'year'},"
                        "'checkout':true")),
      "tiers[1].checkout: needs a price amount > 0" },
    { DOC(FREE "," TIER("'price':null,'contact_sales':true,'checkout':true")),
      "tiers[1].checkout: must be false for a contact_sales tier" },
    { DOC(FREE "," TIER("'price':{'amount':5,'currency':'usd','interval':'year'},"
                        "'contact_sales':true")),
      "tiers[1].price: must be null for a contact_sales tier" },
    { DOC(FREE "," TIER("'price':{'amount':0,'currency':'eur','interval':'year'}")),
      "tiers[1].price.amount: only the default tier 'free' may be free" },
    { DOC(FREE "," PAID_WITH(",'stripe_price_id':'price-1'")),
      "tiers[1].stripe_price_id: must be empty or characters of [A-Za-z0-9_]" },
    { DOC("{'id':'free','name':'F','rank':0," FREE_PRICE ",'features':[],'limits':{'ai':1},"
          "'stripe_price_id':'price_1'}," PAID_WITH(",'stripe_price_id':'price_1'")),
      "tiers[1].stripe_price_id: 'price_1' is also the price of tier 'free'" },
    { DOC(FREE "," PAID_WITH(",'prices':{}")), "tiers[1].prices: must be an array" },
    { DOC(FREE "," PAID_WITH(",'prices':[{'amount':100,'currency':'usd'}]")),
      "tiers[1].prices[0]: missing key 'interval'" },
    { DOC(FREE "," PAID_WITH(",'prices':[{'amount':100,'currency':'usd','interval':'year',"
                             "'x':1}]")),
      "tiers[1].prices[0]: unknown key 'x'" },
    { DOC(FREE "," PAID_WITH(",'prices':[{'amount':100,'currency':'usd','interval':'month'}]")),
      "tiers[1].prices[0].interval: tier 'paid' already sells a price per month" },
    { DOC(FREE "," PAID_WITH(",'prices':[{'amount':0,'currency':'usd','interval':'year'}]")),
      "tiers[1].prices[0].amount: must be > 0 for a price that is sold" },
    { DOC(FREE "," PAID_WITH(",'prices':[{'amount':9,'currency':'usd','interval':'year',"
                             "'legacy':true}]")),
      "tiers[1].prices[0].stripe_price_id: a legacy price needs its Stripe price id" },
    { DOC(FREE
          "," PAID_WITH(",'stripe_price_id':'price_a','prices':[{'amount':9,'currency':"
                        "'usd','interval':'year','legacy':true,'stripe_price_id':'price_a'}]")),
      "tiers[1].prices[0].stripe_price_id: 'price_a' is also the price of tier 'paid'" },
    { DOC(FREE "," TIER("'price':null,'contact_sales':true,'prices':[{'amount':9,'currency':"
                        "'usd','interval':'year'}]")),
      "tiers[1].prices[0].legacy: must be true: only a tier sold through checkout has other "
      "prices to sell" },
    { DOC(FREE "," TIER("'price':null,'contact_sales':true,'stripe_price_id':'price_e'")),
      "tiers[1].stripe_price_id: a contact_sales tier has no price to sell (legacy prices go in "
      "'prices')" },
    { DOC(FREE "," PAID_WITH(",'prices':[{'amount':9,'currency':'usd','interval':'year'},"
                             "{'amount':9,'currency':'usd','interval':'month','legacy':true,"
                             "'stripe_price_id':'p1'},{'amount':9,'currency':'usd','interval':"
                             "'month','legacy':true,'stripe_price_id':'p2'},{'amount':9,"
                             "'currency':'usd','interval':'month','legacy':true,"
                             "'stripe_price_id':'p3'},{'amount':9,'currency':'usd','interval':"
                             "'month','legacy':true,'stripe_price_id':'p4'},{'amount':9,"
                             "'currency':'usd','interval':'month','legacy':true,"
                             "'stripe_price_id':'p5'}]")),
      "tiers[1].prices: at most 5 prices" },
    { DOC("{'id':'free','name':'F','rank':0," FREE_PRICE ",'features':'x','limits':{'ai':1}}"),
      "tiers[0].features: must be an array" },
    { DOC("{'id':'free','name':'F','rank':0," FREE_PRICE ",'features':['a','a'],"
          "'limits':{'ai':1}}"),
      "tiers[0].features[1]: duplicate feature 'a'" },
    { DOC("{'id':'free','name':'F','rank':0," FREE_PRICE ",'features':['a',3],"
          "'limits':{'ai':1}}"),
      "tiers[0].features[1]: must be 1 to 31 characters of [a-z0-9_]" },
    { DOC("{'id':'free','name':'F','rank':0," FREE_PRICE ",'features':[],'limits':[]}"),
      "tiers[0].limits: must be an object" },
    { DOC("{'id':'free','name':'F','rank':0," FREE_PRICE ",'features':[],"
          "'limits':{'ai':1,'video':2}}"),
      "tiers[0].limits: unknown quota 'video'" },
    { DOC("{'id':'free','name':'F','rank':0," FREE_PRICE ",'features':[],'limits':{'ai':-1}}"),
      "tiers[0].limits.ai: must be an integer >= 0 or null (unlimited)" },
    { DOC("{'id':'free','name':'F','rank':0," FREE_PRICE ",'features':[],'limits':{'ai':'1'}}"),
      "tiers[0].limits.ai: must be an integer >= 0 or null (unlimited)" },
    { "{" QUOTAS ",'default_tier':'gratis','tiers':[" FREE "]}",
      "default_tier: unknown tier 'gratis'" },
    { "{" QUOTAS ",'default_tier':3,'tiers':[" FREE "]}", "default_tier: must be a tier id" },
    { "{" QUOTAS ",'default_tier':'paid','tiers':[" FREE "," PAID "]}",
      "default_tier: tier 'paid' must have price amount 0, no checkout and no contact_sales" },
};

/* Returns a static copy of s with every ' turned into ". */
static const char *json_of(const char *s)
{
    static char out[DOC_MAX];

    (void)!str_copy(out, sizeof(out), s); /* the rows are far shorter */
    for (char *c = out; *c; c++)
        if (*c == '\'')
            *c = '"';
    return out;
}

static void test_parse_errors(void)
{
    static struct tier_catalog cat;
    char err[256];

    for (size_t i = 0; i < ARRAY_SIZE(parse_rows); i++) {
        const char *doc = json_of(parse_rows[i].json);
        enum err e = tier_catalog_parse(doc, strlen(doc), &cat, err, sizeof(err));
        const char *want = parse_rows[i].want;

        T_EQ_STR(e == ERR_OK ? "" : err, want, "parse row %zu", i);
        T_EQ_I64(e, *want ? ERR_INVALID : ERR_OK, "parse row %zu: result", i);
        if (e != ERR_OK)
            T_EQ_I64(cat.tier_count, 0, "parse row %zu: a failed parse leaves no tiers", i);
    }
}

/* Builds a document whose tier n has the given feature count, or with n_tiers tiers. */
static const char *big_doc(size_t n_tiers, size_t n_features)
{
    static char out[DOC_MAX];
    struct buf b;

    buf_init(&b, DOC_MAX);
    (void)!buf_puts(&b, "{" QUOTAS ",'default_tier':'free','tiers':[" FREE); /* fits DOC_MAX */
    for (size_t i = 1; i < n_tiers; i++) {
        (void)!buf_appendf(&b,
                           ",{'id':'t%zu','name':'T','rank':%zu,'price':null,"
                           "'contact_sales':true,'limits':{'ai':null},'features':[",
                           i, i);
        for (size_t j = 0; j < n_features; j++)
            (void)!buf_appendf(&b, "%s'f%zu'", j ? "," : "", j);
        (void)!buf_puts(&b, "]}");
    }
    (void)!buf_puts(&b, "]}");
    (void)!str_copy(out, sizeof(out), json_of(buf_str(&b)));
    buf_release(&b);
    return out;
}

static const struct {
    size_t tiers;
    size_t features;
    const char *want;
} cap_rows[] = {
    { TIER_MAX, TIER_FEATURE_MAX, "" },
    { TIER_MAX + 1, 1, "tiers: at most 16 tiers" },
    { 2, TIER_FEATURE_MAX + 1, "tiers[1].features: at most 32 features" },
};

/* Annual and legacy prices map back to their tier; a contact_sales tier keeps contract prices. */
static void test_extra_prices(void)
{
    static struct tier_catalog cat;
    const char *doc = json_of(DOC(FREE "," PAID_WITH(
        ",'stripe_price_id':'price_m','prices':[{'amount':5000,'currency':"
        "'usd','interval':'year','stripe_price_id':'price_y'},{'amount':300,"
        "'currency':'usd','interval':'month','legacy':true,"
        "'stripe_price_id':'price_old'}]") ","
                                           "{'id':'ent','name':'E','rank':9,'price':null,'contact_sales':true,'features':[],"
                                           "'limits':{'ai':null},'prices':[{'amount':90000,'currency':'eur','interval':'year',"
                                           "'legacy':true,'stripe_price_id':'price_deal'}]}"));
    char err[256] = "";
    const struct tier *t = NULL;
    const struct tier_price *p;
    json_t *arr;
    char *text;

    T_EQ_I64(tier_catalog_parse(doc, strlen(doc), &cat, err, sizeof(err)), ERR_OK, "parses (%s)",
             err);
    p = tier_catalog_find_price(&cat, "price_old", &t);
    T_OK(p && p->legacy && t && strcmp(t->id, "paid") == 0, "a legacy price maps to its tier");
    T_EQ_STR(tier_catalog_find_by_price(&cat, "price_deal")
                 ? tier_catalog_find_by_price(&cat, "price_deal")->id
                 : NULL,
             "ent", "a contract price maps to the contact_sales tier");
    T_EQ_STR(tier_price_for_interval(tier_catalog_find(&cat, "paid"), "year")->stripe_price_id,
             "price_y", "the annual price is sold");
    T_OK(tier_sold_price(tier_catalog_find(&cat, "ent"), NULL) == NULL, "ent sells nothing");
    arr = tier_catalog_to_json(&cat);
    text = json_dumps(json_object_get(json_array_get(arr, 1), "prices"), JSON_PRESERVE_ORDER);
    T_EQ_STR(text,
             "[{\"amount\": 500, \"currency\": \"usd\", \"interval\": \"month\"}, "
             "{\"amount\": 5000, \"currency\": \"usd\", \"interval\": \"year\"}]",
             "pricing lists the prices sold, not the legacy one");
    free(text);
    text = json_dumps(json_object_get(json_array_get(arr, 2), "prices"), 0);
    T_EQ_STR(text, "[]", "a contact_sales tier lists no price");
    free(text);
    json_decref(arr);
}

/* Which way a plan change goes: the rank, then the interval. */
static void test_change_of(const struct tier_catalog *cat)
{
    const struct tier *free_ = tier_catalog_find(cat, "free");
    const struct tier *premium = tier_catalog_find(cat, "premium");
    const struct tier *plus = tier_catalog_find(cat, "plus");
    const struct tier_price *pm = tier_sold_price(premium, "month");
    const struct tier_price *py = tier_sold_price(premium, "year");
    const struct tier_price *xm = tier_sold_price(plus, "month");
    const struct tier_price *xy = tier_sold_price(plus, "year");

    T_EQ_I64(tier_change_of(premium, pm, premium, pm), TIER_CHANGE_NONE, "the same price");
    T_EQ_I64(tier_change_of(premium, pm, plus, xm), TIER_CHANGE_UPGRADE, "premium to plus");
    T_EQ_I64(tier_change_of(plus, xm, premium, pm), TIER_CHANGE_DOWNGRADE, "plus to premium");
    T_EQ_I64(tier_change_of(premium, pm, premium, py), TIER_CHANGE_UPGRADE, "monthly to annual");
    T_EQ_I64(tier_change_of(premium, py, premium, pm), TIER_CHANGE_DOWNGRADE, "annual to monthly");
    T_EQ_I64(tier_change_of(premium, py, plus, xm), TIER_CHANGE_UPGRADE,
             "a higher tier wins over a shorter interval");
    T_EQ_I64(tier_change_of(plus, xy, premium, py), TIER_CHANGE_DOWNGRADE,
             "plus to premium, yearly");
    T_EQ_I64(tier_change_of(premium, pm, free_, tier_primary_price(free_)), TIER_CHANGE_DOWNGRADE,
             "to free is down");
}

static void test_caps(void)
{
    static struct tier_catalog cat;
    char err[256];

    for (size_t i = 0; i < ARRAY_SIZE(cap_rows); i++) {
        const char *doc = big_doc(cap_rows[i].tiers, cap_rows[i].features);
        enum err e = tier_catalog_parse(doc, strlen(doc), &cat, err, sizeof(err));
        T_EQ_STR(e == ERR_OK ? "" : err, cap_rows[i].want, "%zu tiers of %zu features",
                 cap_rows[i].tiers, cap_rows[i].features);
    }
    T_EQ_I64(cat.tier_count, 0, "the failed parse emptied the catalogue");
}

static void test_small_errbuf(void)
{
    static struct tier_catalog cat;
    const char *doc = json_of(DOC(""));
    char err[8] = "xxxxxxx";

    T_EQ_I64(tier_catalog_parse(doc, strlen(doc), &cat, err, sizeof(err)), ERR_INVALID,
             "a short errbuf still fails");
    T_EQ_STR(err, "tiers: ", "the message is truncated and terminated");
    T_EQ_I64(tier_catalog_parse(doc, strlen(doc), &cat, err, 0), ERR_INVALID,
             "errlen 0 is allowed");
}

static const struct {
    const char *id;
    int64_t rank;
    int64_t amount;
    bool contact_sales;
    bool checkout;
    int64_t ai_minutes;
    int64_t scenarios;
    size_t features;
} builtin_rows[] = {
    { "free", 0, 0, false, false, 30, 5, 2 },
    { "premium", 1, 999, false, true, TIER_UNLIMITED, TIER_UNLIMITED, 5 },
    { "plus", 2, 1999, false, true, TIER_UNLIMITED, TIER_UNLIMITED, 7 },
    { "enterprise", 3, 0, true, false, TIER_UNLIMITED, TIER_UNLIMITED, 10 },
};

static void test_builtin(const struct tier_catalog *cat)
{
    int ai = tier_catalog_quota_index(cat, "ai_minutes");
    int sc = tier_catalog_quota_index(cat, "scenarios");

    T_EQ_I64(cat->tier_count, ARRAY_SIZE(builtin_rows), "built-in tier count");
    T_OK(ai >= 0 && sc >= 0, "built-in quotas ai_minutes and scenarios");
    T_EQ_I64(tier_catalog_quota_index(cat, "video"), -1, "unknown quota index");
    T_EQ_I64(cat->quotas[ai].window, QUOTA_WINDOW_DAY, "ai_minutes counts per UTC day");
    T_EQ_I64(cat->quotas[sc].window, QUOTA_WINDOW_WEEK, "scenarios count per ISO week");
    T_EQ_STR(tier_catalog_default(cat)->id, "free", "free is the default tier");
    for (size_t i = 0; i < ARRAY_SIZE(builtin_rows) && ai >= 0 && sc >= 0; i++) {
        const struct tier *t = tier_catalog_find(cat, builtin_rows[i].id);
        T_OK(t != NULL, "built-in tier '%s' exists", builtin_rows[i].id);
        if (!t)
            continue;
        T_EQ_I64(t->rank, builtin_rows[i].rank, "%s: rank", t->id);
        T_EQ_I64(tier_primary_price(t) ? tier_primary_price(t)->amount : 0, builtin_rows[i].amount,
                 "%s: amount", t->id);
        T_EQ_STR(tier_primary_price(t) ? tier_primary_price(t)->currency : "",
                 t->contact_sales ? "" : "usd", "%s: currency", t->id);
        T_EQ_I64(t->contact_sales, builtin_rows[i].contact_sales, "%s: contact_sales", t->id);
        T_EQ_I64(t->checkout, builtin_rows[i].checkout, "%s: checkout", t->id);
        T_EQ_I64(t->limits[ai], builtin_rows[i].ai_minutes, "%s: ai_minutes limit", t->id);
        T_EQ_I64(t->limits[sc], builtin_rows[i].scenarios, "%s: scenarios limit", t->id);
        T_EQ_I64(t->feature_count, builtin_rows[i].features, "%s: feature count", t->id);
        for (size_t k = 0; k < t->price_count; k++)
            T_EQ_STR(t->prices[k].stripe_price_id, "", "%s: no price id built in", t->id);
    }
    T_OK(tier_catalog_find(cat, "gold") == NULL, "unknown tier is NULL");
}

static const struct {
    const char *feature;
    const char *lowest; /* NULL: no tier has it */
} feature_rows[] = {
    { "basic_lessons", "free" },
    { "ai_conversation", "free" },
    { "unlimited_ai", "premium" },
    { "all_scenarios", "premium" },
    { "progress_tracking", "premium" },
    { "custom_ai", "plus" },
    { "business_german", "plus" },
    { "self_hosted", "enterprise" },
    { "white_label", "enterprise" },
    { "priority_support", "enterprise" },
    { "time_travel", NULL },
    { "", NULL },
};

static void test_features(const struct tier_catalog *cat)
{
    for (size_t i = 0; i < ARRAY_SIZE(feature_rows); i++) {
        const struct tier *t = tier_catalog_lowest_with_feature(cat, feature_rows[i].feature);
        T_EQ_STR(t ? t->id : NULL, feature_rows[i].lowest, "lowest tier with '%s'",
                 feature_rows[i].feature);
        T_OK(tier_has_feature(tier_catalog_find(cat, "enterprise"), feature_rows[i].feature) ==
                 (feature_rows[i].lowest != NULL),
             "enterprise has '%s' iff some tier has it", feature_rows[i].feature);
    }
}

static const struct {
    const char *tier;
    const char *price;
    enum err want;
} price_rows[] = {
    { "premium", "price_premium", ERR_OK },
    { "plus", "price_plus", ERR_OK },
    { "plus", "price_plus", ERR_OK },          /* setting the same price again */
    { "plus", "price_premium", ERR_CONFLICT }, /* premium's */
    { "gold", "price_gold", ERR_NOT_FOUND },
    { "enterprise", "price_e", ERR_NOT_FOUND },
    { "premium", "", ERR_INVALID },
    { "premium", "price 1", ERR_INVALID },
};

/* The same through the interval: premium's annual price, and one no tier sells. */
static const struct {
    const char *tier, *interval, *price;
    enum err want;
} interval_rows[] = {
    { "premium", "year", "price_premium_y", ERR_OK },
    { "plus", "year", "price_premium_y", ERR_CONFLICT },
    { "plus", "year", "price_premium", ERR_CONFLICT },
    { "free", "year", "price_free_y", ERR_NOT_FOUND },
    { "plus", "week", "price_plus_w", ERR_NOT_FOUND },
};

static const struct {
    const char *price;
    const char *tier; /* NULL: no tier */
} by_price_rows[] = {
    { "price_premium", "premium" },
    { "price_plus", "plus" },
    { "price_gold", NULL },
    { "", NULL },
};

static void test_prices(struct tier_catalog *cat)
{
    for (size_t i = 0; i < ARRAY_SIZE(price_rows); i++)
        T_EQ_I64(tier_catalog_set_price_id(cat, price_rows[i].tier, NULL, price_rows[i].price),
                 price_rows[i].want, "set price '%s' on '%s'", price_rows[i].price,
                 price_rows[i].tier);
    for (size_t i = 0; i < ARRAY_SIZE(interval_rows); i++)
        T_EQ_I64(tier_catalog_set_price_id(cat, interval_rows[i].tier, interval_rows[i].interval,
                                           interval_rows[i].price),
                 interval_rows[i].want, "set price '%s' on '%s' per %s", interval_rows[i].price,
                 interval_rows[i].tier, interval_rows[i].interval);
    T_EQ_STR(tier_catalog_find_by_price(cat, "price_premium_y")->id, "premium",
             "the annual price maps back to its tier");
    T_EQ_STR(tier_price_for_interval(tier_catalog_find(cat, "premium"), "year")->stripe_price_id,
             "price_premium_y", "premium is sold per year");
    T_EQ_I64(tier_price_for_interval(tier_catalog_find(cat, "premium"), "year")->amount, 9990,
             "at 9990");
    T_OK(tier_price_for_interval(tier_catalog_find(cat, "plus"), "year") == NULL,
         "plus has no annual price id: not sold per year");
    T_EQ_STR(tier_price_for_interval(tier_catalog_find(cat, "plus"), NULL)->interval, "month",
             "the primary price is monthly");
    for (size_t i = 0; i < ARRAY_SIZE(by_price_rows); i++) {
        const struct tier *t = tier_catalog_find_by_price(cat, by_price_rows[i].price);
        T_EQ_STR(t ? t->id : NULL, by_price_rows[i].tier, "tier of price '%s'",
                 by_price_rows[i].price);
    }
    T_OK(tier_catalog_find_by_price(cat, NULL) == NULL, "NULL price id finds nothing");
}

static const struct {
    const char *path; /* tier index, then a key path */
    size_t tier;
    const char *key;
    const char *sub;
    const char *want; /* the JSON text of the value */
} json_rows[] = {
    { "free price", 0, "price", NULL,
      "{\"amount\": 0, \"currency\": \"usd\", \"interval\": \"month\"}" },
    { "premium price", 1, "price", NULL,
      "{\"amount\": 999, \"currency\": \"usd\", \"interval\": \"month\"}" },
    { "enterprise price", 3, "price", NULL, "null" },
    { "free ai limit", 0, "limits", "ai_minutes", "30" },
    { "free scenarios limit", 0, "limits", "scenarios", "5" },
    { "plus ai limit", 2, "limits", "ai_minutes", "null" },
    { "free is default", 0, "default", NULL, "true" },
    { "plus is not default", 2, "default", NULL, "false" },
    { "enterprise contact", 3, "contact_sales", NULL, "true" },
    { "premium checkout", 1, "checkout", NULL, "true" },
    { "free quotas", 0, "quotas", NULL,
      "[{\"id\": \"ai_minutes\", \"unit\": \"minute\", \"window\": \"day\", \"limit\": 30}, "
      "{\"id\": \"scenarios\", \"unit\": \"scenario\", \"window\": \"week\", \"limit\": 5}]" },
    { "plus features", 2, "features", NULL,
      "[\"basic_lessons\", \"ai_conversation\", \"unlimited_ai\", \"all_scenarios\", "
      "\"progress_tracking\", \"custom_ai\", \"business_german\"]" },
};

static void test_json(const struct tier_catalog *cat)
{
    json_t *arr = tier_catalog_to_json(cat);

    T_EQ_I64(json_array_size(arr), cat->tier_count, "one JSON element per tier");
    for (size_t i = 0; i < ARRAY_SIZE(json_rows); i++) {
        json_t *v = json_object_get(json_array_get(arr, json_rows[i].tier), json_rows[i].key);
        char *text;
        if (json_rows[i].sub)
            v = json_object_get(v, json_rows[i].sub);
        text = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_PRESERVE_ORDER) : NULL;
        T_EQ_STR(text, json_rows[i].want, "pricing JSON: %s", json_rows[i].path);
        free(text);
    }
    json_decref(arr);
}

/* Returns the first field where a and b differ, or "" when they are the same catalogue. */
static const char *catalog_diff(const struct tier_catalog *a, const struct tier_catalog *b)
{
    static char what[128];

    if (a->quota_count != b->quota_count || a->tier_count != b->tier_count ||
        a->default_tier != b->default_tier)
        return "counts or default";
    for (size_t i = 0; i < a->quota_count; i++)
        if (strcmp(a->quotas[i].id, b->quotas[i].id) ||
            strcmp(a->quotas[i].unit, b->quotas[i].unit) ||
            a->quotas[i].window != b->quotas[i].window)
            return "a quota";
    for (size_t i = 0; i < a->tier_count; i++) {
        const struct tier *x = &a->tiers[i], *y = &b->tiers[i];
        bool same = !strcmp(x->id, y->id) && !strcmp(x->name, y->name) &&
                    !strcmp(x->description, y->description) && x->rank == y->rank &&
                    x->price_count == y->price_count && x->contact_sales == y->contact_sales &&
                    x->checkout == y->checkout && x->feature_count == y->feature_count &&
                    !memcmp(x->limits, y->limits, a->quota_count * sizeof(x->limits[0]));
        for (size_t j = 0; same && j < x->feature_count; j++)
            same = !strcmp(x->features[j], y->features[j]);
        for (size_t j = 0; same && j < x->price_count; j++) {
            const struct tier_price *p = &x->prices[j], *q = &y->prices[j];
            same = p->amount == q->amount && !strcmp(p->currency, q->currency) &&
                   !strcmp(p->interval, q->interval) && p->legacy == q->legacy &&
                   !strcmp(p->stripe_price_id, q->stripe_price_id);
        }
        if (!same) {
            snprintf(what, sizeof(what), "tier %zu ('%s')", i, x->id);
            return what;
        }
    }
    return "";
}

static void test_example_file(const struct tier_catalog *builtin)
{
    static struct tier_catalog cat;
    char err[256] = "";
    struct buf b;
    enum err e;
    json_t *want, *got;

    buf_init(&b, DOC_MAX);
    e = file_read_all(EXAMPLE_FILE, &b, err, sizeof(err));
    if (e == ERR_OK)
        e = tier_catalog_parse(buf_str(&b), b.len, &cat, err, sizeof(err));
    buf_release(&b);
    T_EQ_STR(e == ERR_OK ? "" : err, "", EXAMPLE_FILE " parses (run from the repo root)");
    T_EQ_STR(catalog_diff(&cat, builtin), "", EXAMPLE_FILE " equals the built-in catalogue");
    want = tier_catalog_to_json(builtin);
    got = tier_catalog_to_json(&cat);
    T_OK(json_equal(want, got), EXAMPLE_FILE " gives the built-in pricing JSON");
    json_decref(want);
    json_decref(got);
}

int main(void)
{
    static struct tier_catalog cat;

    tier_catalog_builtin(&cat);
    test_builtin(&cat);
    test_features(&cat);
    test_json(&cat);
    test_example_file(&cat);
    test_prices(&cat);
    test_parse_errors();
    test_caps();
    test_change_of(&cat);
    test_extra_prices();
    test_small_errbuf();
    return t_done();
}
