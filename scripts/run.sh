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
exec "$BIN" serve
