# shellcheck shell=bash
# Real tailscaled clients for tests, in userspace-networking mode (no TUN, no
# root needed, no changes to the host's routes or DNS).
#   ts_start STATE NAME [extra tailscaled flags...]
#   ts_up STATE NAME LOGIN_SERVER AUTHKEY HOSTNAME [extra `tailscale up` flags...]
#   ts_cli STATE NAME args...        the tailscale CLI against that daemon
#   ts_status_json STATE NAME        `tailscale status --json`
#   ts_stop STATE NAME
# Layout: $STATE/ts/NAME/{sock,state/}, log in $STATE/logs/ts-NAME.log.

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

_ts_dir() { printf '%s/ts/%s\n' "$1" "$2"; }

ts_cli() {
  local state="$1" name="$2"; shift 2
  "$CACHE_BIN/tailscale" --socket="$(_ts_dir "$state" "$name")/sock" "$@"
}

ts_status_json() { ts_cli "$1" "$2" status --json; }

# ts_start STATE NAME [extra tailscaled flags...] — starts tailscaled and
# waits until its local API answers. Idempotent.
ts_start() {
  local state="$1" name="$2"; shift 2
  mkdir -p "$state"
  state=$(cd "$state" && pwd)
  local dir; dir="$(_ts_dir "$state" "$name")"
  mkdir -p "$dir/state"
  chmod 700 "$dir"
  ((${#dir} + 6 < 107)) || die "state dir path too long for a unix socket: $dir/sock"
  local pid
  if pid=$(pid_alive "$state" "ts-$name"); then
    log "tailscaled $name already running (pid $pid)"
    return 0
  fi
  rm -f "$dir/sock"
  # --port=0: random WireGuard UDP port, so many daemons coexist.
  # --no-logs-no-support / TS_NO_LOGS_NO_SUPPORT: no log uploads to
  # log.tailscale.com (offline machine; otherwise it retries forever).
  # TS_LOGS_DIR: keep the log-id file in our dir, not the shared
  # /var/lib/tailscale (tailscale.com/logpolicy LogsDir).
  pid=$(start_bg "$state" "ts-$name" env TS_NO_LOGS_NO_SUPPORT=true TS_LOGS_DIR="$dir/state" \
    "$CACHE_BIN/tailscaled" --tun=userspace-networking --socket="$dir/sock" \
    --statedir="$dir/state" --port=0 --no-logs-no-support "$@")
  local deadline=$((SECONDS + 30))
  # `status --json` succeeds (BackendState NeedsLogin) once the local API is up.
  until ts_cli "$state" "$name" status --json >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$state/logs/ts-$name.log" >&2; die "tailscaled $name exited"; }
    ((SECONDS < deadline)) || die "tailscaled $name did not come up (log: $state/logs/ts-$name.log)"
    sleep 0.1
  done
}

# ts_up STATE NAME LOGIN_SERVER AUTHKEY HOSTNAME [extra flags...] — join the
# tailnet with a pre-auth key; returns once the node is Running.
ts_up() {
  local state="$1" name="$2" server="$3" key="$4" host="$5"; shift 5
  state=$(cd "$state" && pwd)
  # --accept-dns=false: never let a test client touch the host's resolver.
  # --reset: flags not given go back to defaults (re-running ts_up with
  # different flags must not fail on "changing settings").
  ts_cli "$state" "$name" up --login-server="$server" --authkey="$key" \
    --hostname="$host" --accept-dns=false --reset --timeout=60s "$@" >&2
}

# ts_stop STATE NAME
ts_stop() { stop_bg "$1" "ts-$2"; }
