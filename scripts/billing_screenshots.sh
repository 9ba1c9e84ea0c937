#!/bin/sh
# billing_screenshots.sh: writes the billing page's screenshots (docs/billing-page.md) into DIR
# (default docs/): billing-page.png, a signed-in Premium user with usage bars and an invoice, and
# billing-page-pricing.png, the page signed out. They come from the page's browser test
# (tests/integration/billing_page.test.mjs) run with SUBGATE_BILLING_SCREENSHOTS=DIR, 1000 px
# wide, in the page's own look. Needs the release build and Chromium (scripts/deps.sh --test).
set -eu
cd "$(dirname "$0")/.."
dir=${1:-docs}
mkdir -p "$dir"
make --no-print-directory -j2 all >/dev/null
SUBGATE_BILLING_SCREENSHOTS=$(cd "$dir" && pwd) SUBGATE_BIN=build/release/subgate \
    EMULATOR_BIN=build/release/stripe-emulator \
    node --test --test-concurrency=1 --test-name-pattern='signed out|a purchase with 4242' \
    tests/integration/billing_page.test.mjs >/dev/null
ls -l "$dir/billing-page.png" "$dir/billing-page-pricing.png"
