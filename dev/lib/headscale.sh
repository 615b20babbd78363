# shellcheck shell=bash
# Local, offline Headscale shards (DESIGN.md §3).
#   hs_start STATE NAME HTTP_PORT GRPC_PORT METRICS_PORT [HEADSCALE_BIN]
#   hs_stop STATE NAME
#   hs_cli STATE NAME args...      the headscale CLI against that shard (unix socket)
#   hs_url STATE NAME              http://127.0.0.1:HTTP_PORT
#   hs_apikey STATE NAME           the shard's API key
#   hs_api STATE NAME METHOD PATH [JSON_BODY]   curl the REST API with the key
# Layout: $STATE/hs/NAME/{config.yaml,derp.yaml,db.sqlite,noise_private.key,
#         headscale.sock,apikey,env,bin}, log in $STATE/logs/hs-NAME.log.

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

_hs_dir() { printf '%s/hs/%s\n' "$1" "$2"; }

# _hs_bin STATE NAME — the binary this shard was started with.
_hs_bin() {
  local f; f="$(_hs_dir "$1" "$2")/bin"
  if [[ -f "$f" ]]; then cat "$f"; else command -v headscale || echo "$CACHE_BIN/headscale"; fi
}

hs_url() { sed -n 's/^HS_URL=//p' "$(_hs_dir "$1" "$2")/env"; }
hs_apikey() { cat "$(_hs_dir "$1" "$2")/apikey"; }

# hs_cli STATE NAME args... — the CLI talks to the shard's unix socket. The
# HEADSCALE_CLI_* variables would switch it to remote gRPC mode; drop them.
hs_cli() {
  local state="$1" name="$2"; shift 2
  env -u HEADSCALE_CLI_ADDRESS -u HEADSCALE_CLI_API_KEY -u HEADSCALE_CONFIG \
    "$(_hs_bin "$state" "$name")" -c "$(_hs_dir "$state" "$name")/config.yaml" "$@"
}

# hs_api STATE NAME METHOD PATH [JSON_BODY] — prints the response body; fails
# on HTTP >= 400 (body still printed to stderr).
hs_api() {
  local state="$1" name="$2" method="$3" path="$4" body="${5:-}"
  local args=(-sS --max-time 10 -X "$method" -H "Authorization: Bearer $(hs_apikey "$state" "$name")"
    -w '\n%{http_code}')
  [[ -n "$body" ]] && args+=(-H 'Content-Type: application/json' --data "$body")
  local out code
  out=$(curl "${args[@]}" "$(hs_url "$state" "$name")$path")
  code="${out##*$'\n'}"; out="${out%$'\n'*}"
  if ((code >= 400)); then
    printf 'HTTP %s %s %s: %s\n' "$code" "$method" "$path" "$out" >&2
    return 1
  fi
  printf '%s\n' "$out"
}

# _hs_write_config DIR NAME HTTP GRPC METRICS
_hs_write_config() {
  local dir="$1" name="$2" http="$3" grpc="$4" metrics="$5"
  # Headscale refuses to start with an empty DERP map ("initial DERPMap is
  # empty"), and the default derp.urls entry would download Tailscale's map
  # from the internet. One dummy region pointing at loopback satisfies it;
  # clients' DERP connections to it fail fast (nothing listens on port 1),
  # which is fine on one machine: peers reach each other directly over UDP.
  # STUN is off (-1); a local STUN responder was tried and does not shorten
  # `tailscale up` (netcheck's ~3s probe window dominates either way).
  cat >"$dir/derp.yaml" <<'EOF'
# Written by dev/lib/headscale.sh: a dummy, offline DERP map.
regions:
  900:
    regionid: 900
    regioncode: local
    regionname: Local dummy (offline dev)
    nodes:
      - name: 900a
        regionid: 900
        hostname: 127.0.0.1
        ipv4: 127.0.0.1
        stunport: -1
        stunonly: false
        derpport: 1
EOF
  # Keys checked against headscale v0.29.2 config-example.yaml and
  # hscontrol/types/config.go.
  cat >"$dir/config.yaml" <<EOF
# Written by dev/lib/headscale.sh on every hs_start; offline dev/test shard.
server_url: http://127.0.0.1:$http
listen_addr: 127.0.0.1:$http
metrics_listen_addr: 127.0.0.1:$metrics
grpc_listen_addr: 127.0.0.1:$grpc
grpc_allow_insecure: true
noise:
  private_key_path: $dir/noise_private.key
prefixes:
  v4: 100.64.0.0/10
  v6: fd7a:115c:a1e0::/48
  allocation: sequential
derp:
  server:
    enabled: false
  urls: []
  paths:
    - $dir/derp.yaml
  auto_update_enabled: false
  update_frequency: 24h
disable_check_updates: true
database:
  type: sqlite
  sqlite:
    path: $dir/db.sqlite
    write_ahead_log: true
log:
  level: info
  format: text
# PUT /api/v1/policy only works in database mode.
policy:
  mode: database
dns:
  magic_dns: true
  # Must differ from the server_url host.
  base_domain: $name.hs.test
  # With override_local_dns true Headscale insists on dns.nameservers.global;
  # an offline shard has no resolver worth pushing to clients.
  override_local_dns: false
  nameservers:
    global: []
    split: {}
  search_domains: []
  extra_records: []
unix_socket: $dir/headscale.sock
unix_socket_permission: "0770"
logtail:
  enabled: false
taildrop:
  enabled: true
EOF
}

# _hs_key_works STATE NAME — the stored API key is accepted by the shard.
_hs_key_works() {
  local keyf; keyf="$(_hs_dir "$1" "$2")/apikey"
  [[ -s "$keyf" ]] || return 1
  curl -fsS -o /dev/null --max-time 5 -H "Authorization: Bearer $(cat "$keyf")" 2>/dev/null \
    "$(hs_url "$1" "$2")/api/v1/user"
}

_hs_ensure_apikey() {
  local state="$1" name="$2" keyf out key
  keyf="$(_hs_dir "$state" "$name")/apikey"
  if _hs_key_works "$state" "$name"; then return 0; fi
  [[ -s "$keyf" ]] && log "stored API key of $name is no longer accepted; creating a new one"
  out=$(hs_cli "$state" "$name" apikeys create --expiration 365d 2>/dev/null) \
    || die "headscale apikeys create failed for $name"
  key=$(printf '%s\n' "$out" | grep -v '^[[:space:]]*$' | tail -n1 | tr -d '[:space:]')
  [[ -n "$key" ]] || die "empty API key from headscale for $name"
  (umask 077 && printf '%s\n' "$key" >"$keyf.tmp")
  mv -f "$keyf.tmp" "$keyf"
  chmod 600 "$keyf"
  _hs_key_works "$state" "$name" || die "new API key for $name is not accepted"
}

# hs_start STATE NAME HTTP_PORT GRPC_PORT METRICS_PORT [HEADSCALE_BIN]
hs_start() {
  local state="$1" name="$2" http="$3" grpc="$4" metrics="$5"
  local bin="${6:-$CACHE_BIN/headscale}"
  [[ -x "$bin" ]] || bin=$(command -v "$bin") || die "headscale binary not found: ${6:-$CACHE_BIN/headscale}"
  mkdir -p "$state"
  state=$(cd "$state" && pwd)
  local dir; dir="$(_hs_dir "$state" "$name")"
  mkdir -p "$dir"
  chmod 700 "$dir"
  ((${#dir} + 16 < 107)) || die "state dir path too long for a unix socket: $dir/headscale.sock"

  local pid
  if pid=$(pid_alive "$state" "hs-$name"); then
    if [[ "$(cat "$dir/env" 2>/dev/null)" == *"HS_URL=http://127.0.0.1:$http"* ]] \
      && curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$http/health"; then
      log "headscale $name already running (pid $pid)"
      _hs_ensure_apikey "$state" "$name"
      return 0
    fi
    log "headscale $name runs with other settings; restarting"
    hs_stop "$state" "$name"
  fi
  local p
  for p in "$http" "$grpc" "$metrics"; do
    port_in_use "$p" && die "port $p is already in use (needed by headscale $name)"
  done

  _hs_write_config "$dir" "$name" "$http" "$grpc" "$metrics"
  printf '%s\n' "$bin" >"$dir/bin"
  cat >"$dir/env" <<EOF
HS_NAME=$name
HS_URL=http://127.0.0.1:$http
HS_GRPC=127.0.0.1:$grpc
HS_METRICS=http://127.0.0.1:$metrics
HS_API_KEY_FILE=$dir/apikey
HS_CONFIG=$dir/config.yaml
EOF
  # A socket left behind by a killed server makes the next bind fail.
  rm -f "$dir/headscale.sock"

  local t0=$SECONDS
  log "starting headscale $name ($("$bin" version 2>/dev/null | head -n1)) on 127.0.0.1:$http"
  # No HEADSCALE_* variables leak in: viper would let them override the file.
  local unset_env=() v
  for v in $(compgen -e); do [[ "$v" == HEADSCALE_* ]] && unset_env+=(-u "$v"); done
  pid=$(start_bg "$state" "hs-$name" env "${unset_env[@]}" "$bin" serve -c "$dir/config.yaml")
  if ! wait_for_http "http://127.0.0.1:$http/health" 60 "$pid"; then
    tail -n 30 "$state/logs/hs-$name.log" >&2
    die "headscale $name did not become healthy (log: $state/logs/hs-$name.log)"
  fi
  # The unix socket (used by the CLI for the API key) comes up with the
  # servers, but be explicit rather than racy.
  local _
  for _ in $(seq 1 50); do [[ -S "$dir/headscale.sock" ]] && break; sleep 0.1; done
  _hs_ensure_apikey "$state" "$name"
  log "headscale $name ready in $((SECONDS - t0))s: http://127.0.0.1:$http (key in $dir/apikey)"
}

# hs_stop STATE NAME
hs_stop() {
  stop_bg "$1" "hs-$2"
}
