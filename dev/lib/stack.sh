# shellcheck shell=bash
# The whole stack of real parts: a private Postgres, the Authentik-shaped OIDC provider,
# two Headscale shards and the portal, registered with each other. Used by `dev/up`
# (profile dev) and `dev/test` (profile test, other ports, so both can run at once).

# shellcheck source=dev/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=dev/lib/postgres.sh
source "$DEV_LIB/postgres.sh"
# shellcheck source=dev/lib/headscale.sh
source "$DEV_LIB/headscale.sh"
# shellcheck source=dev/lib/build.sh
source "$DEV_LIB/build.sh"

# stack_ports PROFILE — sets the port variables of a profile. Headscale's ports stay below
# Linux's ephemeral range (32768-60999): a port in it can be taken at any moment by an
# outgoing connection, and a CI run failed once when gRPC's 50546 was (session 4).
stack_ports() {
  case "$1" in
    dev) PG_PORT=54329 OIDC_PORT=9400 PORTAL_PORT=3000 METRICS_PORT=9464 HS_A=(18080 28443 19090) HS_B=(18081 28444 19091) ;;
    test) PG_PORT=54339 OIDC_PORT=9410 PORTAL_PORT=3100 METRICS_PORT=9474 HS_A=(18180 28543 19190) HS_B=(18181 28544 19191) ;;
    *) die "unknown profile $1" ;;
  esac
  export PG_PORT OIDC_PORT PORTAL_PORT METRICS_PORT
}

# stack_prerequisites — everything installed and built (idempotent).
stack_prerequisites() {
  ensure_apt postgresql curl ca-certificates
  ensure_go_tools
  build_portal debug
}

# stack_services STATE PROFILE — Postgres (migrated), OIDC provider and both shards,
# shards and demo tenants registered in the portal's database. Exports what the portal
# and tests need.
stack_services() {
  local state="$1" profile="$2"
  stack_ports "$profile"
  mkdir -p "$state"
  state=$(cd "$state" && pwd)

  pg_start "$state" "$PG_PORT" >/dev/null
  export DATABASE_URL="$PG_APP_URL" DATABASE_MIGRATION_URL="$PG_OWNER_URL"
  "$PORTAL_BIN" migrate >&2

  if [[ ! -s "$state/secret_key" ]]; then
    head -c 32 /dev/urandom | base64 >"$state/secret_key"
    chmod 600 "$state/secret_key"
  fi
  PORTAL_SECRET_KEY="$(cat "$state/secret_key")"
  export PORTAL_SECRET_KEY

  if ! pid_alive "$state" oidc >/dev/null; then
    mkdir -p "$state/oidc"
    OIDC_PORT="$OIDC_PORT" OIDC_STATE_DIR="$state/oidc" start_bg "$state" oidc node "$ROOT/dev/oidc/server.mjs" >/dev/null
  fi
  wait_for_http "http://127.0.0.1:$OIDC_PORT/healthz" 30 || die "OIDC provider did not start (see $state/logs/oidc.log)"
  export OIDC_ISSUER_URL="http://127.0.0.1:$OIDC_PORT/application/o/portal/"
  export OIDC_CLIENT_ID=portal OIDC_CLIENT_SECRET=portal-dev-secret

  hs_start "$state" hs-a "${HS_A[@]}" >/dev/null
  hs_start "$state" hs-b "${HS_B[@]}" >/dev/null
  local name port
  for name in hs-a hs-b; do
    port=$([[ $name == hs-a ]] && echo "${HS_A[0]}" || echo "${HS_B[0]}")
    hs_apikey "$state" "$name" | "$PORTAL_BIN" shard upsert --cluster-id "$name" \
      --name "Local shard ${name#hs-}" --region local \
      --login-server-url "http://127.0.0.1:$port" --api-url "http://127.0.0.1:$port" \
      --capacity 500 >&2
  done
  "$PORTAL_BIN" tenant upsert --slug acme --code t7k2 --name "Acme Corp" --plan business --shard hs-a >&2
  "$PORTAL_BIN" tenant upsert --slug globex --code g4x9 --name "Globex" --plan starter --shard hs-b >&2
}

# stack_portal STATE — starts the portal in the background and waits for it.
stack_portal() {
  local state="$1"
  export PORTAL_BIND="127.0.0.1:$PORTAL_PORT" PORTAL_PUBLIC_URL="http://127.0.0.1:$PORTAL_PORT"
  export PORTAL_METRICS_BIND="127.0.0.1:$METRICS_PORT"
  export PORTAL_SITE_ROOT="$SITE_ROOT"
  stop_bg "$state" portal
  local pid
  pid=$(start_bg "$state" portal "$PORTAL_BIN" serve)
  wait_for_http "http://127.0.0.1:$PORTAL_PORT/readyz" 60 "$pid" || die "portal did not start (see $state/logs/portal.log)"
}
