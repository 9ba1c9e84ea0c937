#!/usr/bin/env python3
"""seed.py: the data `make bench` (scripts/bench.sh) feeds subgate.

  seed.py sql USERS PRICE_ID
      SQL (for the sqlite3 shell or psql, after `subgate migrate`) storing USERS customers
      bench_user_<n> (cus_bench_<n>), each with an active subscription sub_bench_<n> to the
      premium tier (PRICE_ID), so that check answers "allowed"; and USERS free users
      bench_free_<n> whose counters for today's day and this ISO week are already there (used
      1), as a day's real traffic finds them: consume on them checks the quota (bench.sh gives
      the free tier a daily limit no run reaches, so every call is granted).
  seed.py webhooks SECRET COUNT USERS INVOICE_JSON OUT_DIR
      COUNT signed invoice.paid events with distinct event and invoice ids, for
      bench/webhook.lua: OUT_DIR/webhook.tpl is the body with two placeholders (@@I@@: the
      event's number, @@U@@: the user's number, I mod USERS), OUT_DIR/webhook.sig holds one
      line per event, "t=<now>,v1=<hex>" (Stripe's scheme: HMAC-SHA256 keyed with the whole
      secret over "<t>.<body>"). The invoice is a Stripe invoice object (INVOICE_JSON:
      tests/fixtures/stripe/invoice.2023-08-16.json, from Stripe's own fixtures) with our ids
      put in. Signed at "now": run it right before the benchmark, Stripe's tolerance is 300 s.
"""
import hashlib
import hmac
import json
import os
import re
import sys
import time

PLACEHOLDER = re.compile(r"@@([IU])@@")
DAY = 86400


def sql(users, price_id):
    now = int(time.time())
    out = ["BEGIN;"]
    for n in range(users):
        u = f"bench_user_{n}"
        out.append(
            "INSERT INTO customers (user_id, stripe_customer_id, email, created) "
            f"VALUES ('{u}', 'cus_bench_{n}', '{u}@example.com', {now});"
        )
        out.append(
            "INSERT INTO subscriptions (id, user_id, stripe_customer_id, tier, price_id, status, "
            "current_period_start, current_period_end, stripe_updated, updated_at) "
            f"VALUES ('sub_bench_{n}', '{u}', 'cus_bench_{n}', 'premium', '{price_id}', "
            f"'active', {now - DAY}, {now + 30 * DAY}, {now - DAY}, {now});"
        )
    day = now - now % DAY
    week = day - ((day // DAY + 3) % 7) * DAY  # Monday 00:00 UTC (1970-01-01 was a Thursday)
    for n in range(users):
        u = f"bench_free_{n}"
        for quota, start in (("ai_minutes", day), ("scenarios", week)):
            out.append(
                "INSERT INTO usage_counters (user_id, quota, window_start, used) "
                f"VALUES ('{u}', '{quota}', {start}, 1);"
            )
    out.append("COMMIT;")
    return "\n".join(out) + "\n"


def event_template(invoice_json, now):
    """An invoice.paid event, as compact JSON with @@I@@ / @@U@@ where the numbers go."""
    with open(invoice_json) as f:
        inv = json.load(f)
    inv.update(
        id="in_bench@@I@@",
        customer="cus_bench_@@U@@",
        subscription="sub_bench_@@U@@",
        number="BENCH-@@I@@",
        status="paid",
        paid=True,
        amount_due=999,
        amount_paid=999,
        amount_remaining=0,
        created=now,
        period_start=now - DAY,
        period_end=now,
        hosted_invoice_url="https://invoice.stripe.com/i/acct_bench/in_bench@@I@@",
        invoice_pdf="https://pay.stripe.com/invoice/acct_bench/in_bench@@I@@/pdf",
    )
    ev = {
        "id": "evt_bench@@I@@",
        "object": "event",
        "api_version": "2023-08-16",
        "created": now,
        "data": {"object": inv},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": "invoice.paid",
    }
    return json.dumps(ev, separators=(",", ":"))


def webhooks(secret, count, users, invoice_json, out_dir):
    now = int(time.time())
    run = os.urandom(4).hex()  # distinct ids across runs on one database too
    tpl = event_template(invoice_json, now).replace("@@I@@", f"_{run}_@@I@@")
    parts = PLACEHOLDER.split(tpl)  # text, name, text, name, ..., text
    key = secret.encode()
    with open(os.path.join(out_dir, "webhook.tpl"), "w") as f:
        f.write(tpl)
    with open(os.path.join(out_dir, "webhook.sig"), "w") as f:
        for i in range(1, count + 1):
            vals = {"I": str(i), "U": str(i % users)}
            body = "".join(vals[p] if k % 2 else p for k, p in enumerate(parts))
            mac = hmac.new(key, f"{now}.{body}".encode(), hashlib.sha256).hexdigest()
            f.write(f"t={now},v1={mac}\n")


def main(argv):
    if len(argv) == 4 and argv[1] == "sql":
        sys.stdout.write(sql(int(argv[2]), argv[3]))
        return 0
    if len(argv) == 7 and argv[1] == "webhooks":
        webhooks(argv[2], int(argv[3]), int(argv[4]), argv[5], argv[6])
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
