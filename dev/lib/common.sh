# shellcheck shell=bash
# Shared helpers for the dev stack and test scripts. Source it; callers set
# `set -euo pipefail` themselves. Nothing here needs the internet except
# ensure_apt (Debian mirror) and ensure_go_tools (Go module proxy).

# Guard against double sourcing (postgres.sh / headscale.sh / tailscale.sh all
# source this file).
if [[ -n "${_HSPORTAL_COMMON_SH:-}" ]]; then return 0; fi
_HSPORTAL_COMMON_SH=1

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEV_LIB="$ROOT/dev/lib"
# The cache lives outside the repo so a fresh clone on the same machine reuses
# the (slow to build) Go binaries.
PORTAL_CACHE="${PORTAL_CACHE:-$HOME/.cache/hsportal}"
CACHE_BIN="$PORTAL_CACHE/bin"
mkdir -p "$CACHE_BIN"
case ":$PATH:" in *":$CACHE_BIN:"*) ;; *) PATH="$CACHE_BIN:$PATH" ;; esac
# Go from the official tarball lives here; Debian 12's golang is too old for
# Headscale (its go.mod wants go >= 1.26).
if [[ -x /usr/local/go/bin/go ]]; then
  case ":$PATH:" in *":/usr/local/go/bin:"*) ;; *) PATH="$PATH:/usr/local/go/bin" ;; esac
fi
export PATH ROOT PORTAL_CACHE CACHE_BIN

# Pinned versions (DESIGN.md §3: target Headscale 0.28 – 0.29).
HEADSCALE_VERSION="${HEADSCALE_VERSION:-0.29.2}"
TAILSCALE_VERSION="${TAILSCALE_VERSION:-1.98.10}"

log() { printf '[hsportal %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- packages --

_APT_UPDATED=""
# ensure_apt pkg... — install only the Debian packages that are missing.
ensure_apt() {
  local missing=() p
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  local sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null || die "need root or sudo to install: ${missing[*]}"
    sudo=(sudo -n)
  fi
  log "installing Debian packages: ${missing[*]}"
  if [[ -z "$_APT_UPDATED" ]]; then
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null >&2
    _APT_UPDATED=1
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends -o Dpkg::Options::=--force-confdef \
    -o Dpkg::Options::=--force-confold "${missing[@]}" </dev/null >&2
}

# ---------------------------------------------------------------- go tools --

# _installed_version BIN — first version-looking token of `BIN version`.
_installed_version() {
  [[ -x "$1" ]] || return 0
  local arg=version
  # tailscaled takes no subcommands, only --version.
  [[ "${1##*/}" == tailscaled ]] && arg=--version
  "$1" "$arg" 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n1 || true
}

# _go_install GOBIN MODULE PKG VERSION — `go install PKG@vVERSION` into GOBIN.
#
# Two gotchas of this machine's module proxy, each handled by a retry:
# - `go install pkg@version` also looks up the module's *latest* version to print
#   deprecation notices, which reads `<module>/@v/list`. The proxy answers 403 for
#   github.com/juanfont/headscale's list while serving the pinned version fine, and a
#   403 (unlike 404/410) is fatal. Retry with a local file:// proxy in front that only
#   answers the list (with the pinned version); everything else falls through to the
#   real proxy. The binary still records the real module version, which Headscale
#   reports on /version.
# - The checksum database answers 404 for a few pseudo-versions (headscale 0.28.0
#   needs github.com/tailscale/tailsql@v0.0.0-2026…). Retry with that one module in
#   GONOSUMDB (its download then comes from the proxy without that check).
_go_install() {
  local gobin="$1" module="$2" pkg="$3" ver="$4" out attempt
  command -v go >/dev/null || die "go not found (install Go >= 1.26 to /usr/local/go)"
  mkdir -p "$gobin"
  log "go install $pkg@v$ver (this takes a few minutes on first run)"
  local proxy nosumdb="${GONOSUMDB:-}" unverified
  proxy=$(go env GOPROXY)
  for attempt in 1 2 3 4; do
    if out=$(cd /tmp && GOBIN="$gobin" GOFLAGS="${GOFLAGS:--buildvcs=false}" \
        GOPROXY="$proxy" GONOSUMDB="$nosumdb" go install "$pkg@v$ver" 2>&1); then
      return 0
    fi
    if grep -qE 'loading deprecation|@v/list' <<<"$out" && [[ "$proxy" != file://* ]]; then
      log "proxy refuses $module/@v/list; retrying with a local list shim"
      local shim="$PORTAL_CACHE/goproxy-shim" escaped
      # Module path escaping for the proxy protocol: upper case -> !lower.
      escaped=$(sed -E 's/([A-Z])/!\L\1/g' <<<"$module")
      mkdir -p "$shim/$escaped/@v"
      printf 'v%s\n' "$ver" >"$shim/$escaped/@v/list"
      proxy="file://$shim,$proxy"
      continue
    fi
    unverified=$(sed -nE 's#.*verifying module: ([^@ ]+)@[^:]*: reading .*/sumdb/.*: 404 Not Found.*#\1#p' <<<"$out" | head -n1)
    if [[ -n "$unverified" && ",$nosumdb," != *",$unverified,"* ]]; then
      log "checksum database does not know $unverified; retrying without it for that module"
      nosumdb="${nosumdb:+$nosumdb,}$unverified"
      continue
    fi
    break
  done
  printf '%s\n' "$out" >&2
  die "go install $pkg@v$ver failed"
}

# ensure_go_tools — headscale, tailscaled, tailscale at the pinned versions in
# $CACHE_BIN (rebuilt only when missing or at another version).
ensure_go_tools() {
  local v
  v=$(_installed_version "$CACHE_BIN/headscale")
  if [[ "$v" != "$HEADSCALE_VERSION" ]]; then
    _go_install "$CACHE_BIN" github.com/juanfont/headscale \
      github.com/juanfont/headscale/cmd/headscale "$HEADSCALE_VERSION"
  fi
  local tool
  for tool in tailscaled tailscale; do
    v=$(_installed_version "$CACHE_BIN/$tool")
    if [[ "$v" != "$TAILSCALE_VERSION" ]]; then
      _go_install "$CACHE_BIN" tailscale.com "tailscale.com/cmd/$tool" "$TAILSCALE_VERSION"
    fi
  done
  v=$(_installed_version "$CACHE_BIN/headscale")
  [[ "$v" == "$HEADSCALE_VERSION" ]] || die "headscale in $CACHE_BIN reports '$v', want $HEADSCALE_VERSION"
}

# resolve_headscale_version SPEC — "0.28.x" -> newest released 0.28.N; an exact
# "0.28.0" is returned as is. Prints the version without the leading "v".
# Sources, in order: the Go proxy's version list; the CHANGELOG.md of any
# headscale module already in the module cache (it has a "## X.Y.Z (date)"
# heading per release) — the fallback matters where the proxy refuses @v/list.
resolve_headscale_version() {
  local spec="${1#v}"
  if [[ "$spec" != *x ]]; then printf '%s\n' "$spec"; return 0; fi
  local prefix="${spec%x}" versions="" found
  versions=$(cd /tmp && go list -m -versions github.com/juanfont/headscale 2>/dev/null \
    | tr ' ' '\n' | sed -n 's/^v//p') || true
  if [[ -z "$versions" ]]; then
    local modcache changelog
    modcache=$(go env GOMODCACHE 2>/dev/null || true)
    for changelog in "$modcache"/github.com/juanfont/headscale@v*/CHANGELOG.md; do
      [[ -f "$changelog" ]] || continue
      versions+=$'\n'$(sed -nE 's/^## ([0-9]+\.[0-9]+\.[0-9]+) .*/\1/p' "$changelog")
    done
  fi
  found=$(grep -E "^${prefix//./\\.}[0-9]+$" <<<"$versions" | sort -uV | tail -n1 || true)
  [[ -n "$found" ]] || die "no released headscale version matches $spec"
  printf '%s\n' "$found"
}

# ensure_headscale_version SPEC — an extra headscale (e.g. "0.28.x") for version
# coverage, installed as $CACHE_BIN/headscale-v<ver>. Prints the binary path.
# With HSPORTAL_DRY_RUN=1 it only prints the version it would build.
ensure_headscale_version() {
  local ver bin tmp
  ver=$(resolve_headscale_version "$1")
  bin="$CACHE_BIN/headscale-v$ver"
  if [[ "${HSPORTAL_DRY_RUN:-}" == 1 ]]; then
    log "would build headscale v$ver into $bin"
    printf '%s\n' "$bin"
    return 0
  fi
  if [[ "$(_installed_version "$bin")" != "$ver" ]]; then
    tmp=$(mktemp -d)
    _go_install "$tmp" github.com/juanfont/headscale \
      github.com/juanfont/headscale/cmd/headscale "$ver"
    mv -f "$tmp/headscale" "$bin"
    rm -rf "$tmp"
  fi
  printf '%s\n' "$bin"
}

# ----------------------------------------------------------------- waiting --

# wait_for_http URL TIMEOUT_SECONDS [PID] — until URL answers 2xx. If PID is
# given and that process dies first, fail at once instead of waiting it out.
wait_for_http() {
  local url="$1" timeout="${2:-30}" pid="${3:-}"
  local deadline=$((SECONDS + timeout))
  while ((SECONDS < deadline)); do
    if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then return 0; fi
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      log "process $pid exited while waiting for $url"
      return 1
    fi
    sleep 0.1
  done
  log "timed out after ${timeout}s waiting for $url"
  return 1
}

# port_in_use PORT [HOST] — true if something accepts TCP connections there.
port_in_use() {
  local port="$1" host="${2:-127.0.0.1}"
  (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

# wait_for_port HOST PORT TIMEOUT_SECONDS
wait_for_port() {
  local host="$1" port="$2" timeout="${3:-30}"
  local deadline=$((SECONDS + timeout))
  while ((SECONDS < deadline)); do
    port_in_use "$port" "$host" && return 0
    sleep 0.1
  done
  log "timed out after ${timeout}s waiting for $host:$port"
  return 1
}

# free_port — a TCP port on 127.0.0.1 that is free right now (racy by nature:
# prefer letting servers bind port 0 where they support it).
free_port() {
  local p i
  for i in $(seq 1 200); do
    p=$((20000 + RANDOM % 40000))
    if ! port_in_use "$p" && ! ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then
      printf '%s\n' "$p"
      return 0
    fi
  done
  die "no free port found"
}

# ------------------------------------------------------ process tracking ----
#
# Each background process gets $STATE/pids/NAME.pid holding "PID STARTTIME"
# (STARTTIME = field 22 of /proc/PID/stat) so a stale file whose PID was
# reused by an unrelated process is recognised and never signalled. Processes
# run in their own session (setsid) so the whole tree — e.g. a wrapper and its
# child — is signalled through the process group.

# _proc_starttime PID — kernel start time of PID, empty if it is gone.
_proc_starttime() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  # Drop "pid (comm) " first: comm may contain spaces.
  stat="${stat##*) }"
  # Field 22 overall is field 20 after pid and comm.
  awk '{print $20}' <<<"$stat"
}

# pid_alive STATE NAME — true (and prints the pid) if the tracked process runs.
pid_alive() {
  local file="$1/pids/$2.pid" pid start
  [[ -f "$file" ]] || return 1
  read -r pid start <"$file" || true
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -n "$start" && "$(_proc_starttime "$pid")" == "$start" ]] || return 1
  printf '%s\n' "$pid"
}

# start_bg STATE NAME cmd... — run cmd in the background in a new session,
# stdout+stderr appended to $STATE/logs/NAME.log. Prints the pid. Refuses to
# start a second copy if NAME is already running.
start_bg() {
  local state="$1" name="$2"; shift 2
  mkdir -p "$state/logs" "$state/pids"
  local pidfile="$state/pids/$name.pid" logfile="$state/logs/$name.log" pid
  if pid=$(pid_alive "$state" "$name"); then
    die "$name is already running (pid $pid)"
  fi
  rm -f "$pidfile"
  printf '\n=== %s start: %s\n' "$(date -Is)" "$*" >>"$logfile"
  # setsid may fork (if we are a group leader), so let the process write its
  # own pid, then exec the real command in its place: the pid we record is
  # both the command's pid and its process group id.
  # shellcheck disable=SC2016 # expanded by the inner bash, not here
  setsid bash -c 'echo "$$ $(awk "{print \$22}" /proc/$$/stat)" >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' \
    "$pidfile" "$@" </dev/null >>"$logfile" 2>&1 &
  local _
  for _ in $(seq 1 100); do
    [[ -s "$pidfile" ]] && break
    sleep 0.02
  done
  [[ -s "$pidfile" ]] || die "$name did not start (see $logfile)"
  read -r pid _ <"$pidfile"
  printf '%s\n' "$pid"
}

# stop_bg STATE NAME... — SIGTERM (process group), wait up to 10s, SIGKILL.
stop_bg() {
  local state="$1"; shift
  local name pid pids=() names=()
  for name in "$@"; do
    if pid=$(pid_alive "$state" "$name"); then
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid"); names+=("$name")
    fi
  done
  local deadline=$((SECONDS + 10)) alive
  while ((${#pids[@]} > 0)); do
    alive=()
    for pid in "${pids[@]}"; do
      # Also wait for the rest of the group, not only the leader.
      if kill -0 "$pid" 2>/dev/null || kill -0 -- "-$pid" 2>/dev/null; then alive+=("$pid"); fi
    done
    pids=("${alive[@]+"${alive[@]}"}")
    ((${#pids[@]} == 0)) && break
    if ((SECONDS >= deadline)); then
      for pid in "${pids[@]}"; do
        log "pid $pid ignored SIGTERM for 10s; sending SIGKILL"
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
      done
      sleep 0.2
      break
    fi
    sleep 0.1
  done
  for name in "$@"; do rm -f "$state/pids/$name.pid"; done
}

# stop_all STATE — stop every tracked process, and the Postgres cluster if
# $STATE has one (pg_ctl daemonizes itself, so it is not pid-tracked).
stop_all() {
  local state="$1" f names=()
  if [[ -d "$state/pids" ]]; then
    for f in "$state"/pids/*.pid; do
      [[ -e "$f" ]] || continue
      f="${f##*/}"; names+=("${f%.pid}")
    done
  fi
  ((${#names[@]} == 0)) || stop_bg "$state" "${names[@]}"
  if [[ -f "$state/pg/data/postmaster.pid" ]]; then
    # shellcheck source=postgres.sh
    declare -F pg_stop >/dev/null || source "$DEV_LIB/postgres.sh"
    pg_stop "$state"
  fi
}
