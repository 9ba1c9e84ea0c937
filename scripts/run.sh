#!/bin/sh
# run.sh: `make run`. Writes a development .env on first use (never overwrites one), says how
# to mint a user token, then runs the service in the foreground (SQLite by default).
set -eu
cd "$(dirname "$0")/.."
BIN=build/release/subgate
rand() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
if [ ! -f .env ]; then
    umask 077
    cat >.env <<ENV
# Development configuration written by 'make run' on $(date -u +%Y-%m-%d). See README.md.
JWT_SECRET=$(rand 32)
SERVICE_API_KEYS=sk_svc_$(rand 24)
DATABASE_URL=sqlite:var/subgate.db
LISTEN=127.0.0.1:8080
ALLOWED_REDIRECT_ORIGINS=http://localhost:3000
# Set these to talk to Stripe (test mode keys work):
# STRIPE_SECRET_KEY=sk_test_...
# STRIPE_PUBLISHABLE_KEY=pk_test_...
# STRIPE_WEBHOOK_SECRET=whsec_...
# STRIPE_PREMIUM_PRICE_ID=price_...
# STRIPE_PLUS_PRICE_ID=price_...
# STRIPE_PREMIUM_ANNUAL_PRICE_ID=price_...
# STRIPE_PLUS_ANNUAL_PRICE_ID=price_...
ENV
    echo "run: wrote a development .env (random JWT_SECRET and SERVICE_API_KEYS)"
fi
listen=$(sed -n 's/^LISTEN=//p' .env | tail -n 1)
listen=${LISTEN:-${listen:-127.0.0.1:8080}}
cat <<TXT
run: try the API (in another terminal):
  curl -s http://$listen/api/v1/payments/pricing
  TOKEN=\$($BIN token user_123 user@example.com)
  curl -s -H "Authorization: Bearer \$TOKEN" http://$listen/api/v1/payments/subscription
TXT

# No Stripe key anywhere: run the bundled Stripe emulator and point subgate at it.
has_key=${STRIPE_SECRET_KEY:-$(sed -n 's/^STRIPE_SECRET_KEY=//p' .env | tail -n 1)}
if [ -n "$has_key" ] || [ ! -x build/release/stripe-emulator ]; then
    exec "$BIN" serve
fi
EMU_LISTEN=${EMULATOR_LISTEN:-127.0.0.1:12111}
export EMULATOR_LISTEN="$EMU_LISTEN"
export EMULATOR_SECRET_KEY=sk_test_emulator
export EMULATOR_WEBHOOK_SECRET=whsec_emulator_secret
export EMULATOR_WEBHOOK_URL="http://$listen/api/v1/payments/webhook"
export STRIPE_API_BASE="http://$EMU_LISTEN"
export STRIPE_SECRET_KEY="$EMULATOR_SECRET_KEY"
export STRIPE_PUBLISHABLE_KEY=pk_test_emulator
export STRIPE_WEBHOOK_SECRET="$EMULATOR_WEBHOOK_SECRET"
export STRIPE_PREMIUM_PRICE_ID=price_premium_monthly
export STRIPE_PLUS_PRICE_ID=price_plus_monthly
export STRIPE_PREMIUM_ANNUAL_PRICE_ID=price_premium_annual
export STRIPE_PLUS_ANNUAL_PRICE_ID=price_plus_annual
build/release/stripe-emulator >/dev/null &
emu=$!
trap 'kill $emu 2>/dev/null; wait $emu 2>/dev/null' EXIT INT TERM
echo "run: no STRIPE_SECRET_KEY set: started the Stripe emulator on http://$EMU_LISTEN and pointed"
echo "run: subgate at it (test cards: 4242 4242 4242 4242 pays, 4000 0000 0000 0002 declines)"
"$BIN" serve &
srv=$!
trap 'kill $srv $emu 2>/dev/null; wait $srv $emu 2>/dev/null' EXIT INT TERM
wait $srv
