# shellcheck shell=bash
# A private Postgres cluster per state dir, built from Debian's binaries.
#   pg_start STATE PORT   start (or reuse) the cluster, ensure roles and db
#   pg_stop STATE         fast shutdown
#   pg_psql STATE [psql args...]   psql as the cluster superuser (unix socket)
#   pg_env STATE          print the PG_* variables of a running cluster
# Layout: $STATE/pg/data (PGDATA), $STATE/pg/run (unix socket),
#         $STATE/logs/postgres.log, $STATE/pg/env (sourceable PG_* vars).

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

_pg_newest_bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [[ -x "$d/pg_ctl" ]] && printf '%s\n' "$d"; done \
    | sort -V | tail -n1
}

# pg_bindir — newest /usr/lib/postgresql/<ver>/bin, installing postgresql if
# there is none.
pg_bindir() {
  local d
  d=$(_pg_newest_bindir)
  if [[ -z "$d" || ! -x "$d/pg_ctl" ]]; then
    ensure_apt postgresql postgresql-client
    d=$(_pg_newest_bindir)
  fi
  [[ -x "$d/pg_ctl" ]] || die "no Postgres server binaries in /usr/lib/postgresql/*/bin"
  printf '%s\n' "$d"
}

# initdb and postgres refuse to run as root: as root everything runs as the
# `postgres` OS user (created by the Debian package); otherwise as ourselves.
_pg_as() {
  if ((EUID == 0)); then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# _pg_check_traversable DIR — as root, the postgres user must be able to reach
# DIR through every parent directory (e.g. /root is 0700).
_pg_check_traversable() {
  ((EUID == 0)) || return 0
  local d="$1"
  if ! runuser -u postgres -- test -x "$d"; then
    die "the postgres OS user cannot reach $d (a parent directory is not world-searchable, e.g. /root); use a state dir under /tmp or the repo"
  fi
}

_pg_superuser() { if ((EUID == 0)); then echo postgres; else id -un; fi; }

# pg_psql STATE [args...] — psql over the unix socket as the cluster superuser.
pg_psql() {
  local state="$1"; shift
  local port
  port=$(sed -n 4p "$state/pg/data/postmaster.pid" 2>/dev/null)
  [[ -n "$port" ]] || die "postgres in $state is not running"
  _pg_as "$(pg_bindir)/psql" -X -q -v ON_ERROR_STOP=1 -h "$state/pg/run" -p "$port" \
    -U "$(_pg_superuser)" "$@"
}

# _pg_running STATE — true if the cluster's postmaster is alive. Removes a
# stale postmaster.pid (crash, reboot, or pid reused by another process).
_pg_running() {
  local data="$1/pg/data" pid
  [[ -f "$data/postmaster.pid" ]] || return 1
  pid=$(head -n1 "$data/postmaster.pid")
  if [[ "$pid" =~ ^[0-9]+$ ]] && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == postgres ]] \
    && [[ "$(readlink -f "/proc/$pid/cwd" 2>/dev/null)" == "$(readlink -f "$data")" ]]; then
    return 0
  fi
  log "removing stale $data/postmaster.pid (pid $pid is not this cluster's postmaster)"
  rm -f "$data/postmaster.pid" "$1"/pg/run/.s.PGSQL.*
  return 1
}

_pg_write_env() {
  local state="$1" port="$2"
  PG_PORT="$port"
  PG_OWNER_URL="postgres://portal_owner:portal_owner@127.0.0.1:$port/portal"
  PG_APP_URL="postgres://portal_app:portal_app@127.0.0.1:$port/portal"
  export PG_PORT PG_OWNER_URL PG_APP_URL
  cat >"$state/pg/env" <<EOF
PG_PORT=$port
PG_OWNER_URL=$PG_OWNER_URL
PG_APP_URL=$PG_APP_URL
EOF
}

# pg_env STATE — print PG_PORT / PG_OWNER_URL / PG_APP_URL.
pg_env() { cat "$1/pg/env"; }

# pg_start STATE PORT
pg_start() {
  local state="$1" port="$2"
  [[ "$port" =~ ^[0-9]+$ ]] || die "pg_start: bad port '$port'"
  local bindir; bindir=$(pg_bindir)
  mkdir -p "$state/logs" "$state/pg"
  state=$(cd "$state" && pwd)
  local pg="$state/pg" data="$state/pg/data" run="$state/pg/run" logf="$state/logs/postgres.log"

  # The socket path must fit in sun_path (107 bytes).
  ((${#run} + 20 < 107)) || die "state dir path too long for a unix socket: $run"
  mkdir -p "$data" "$run"
  touch "$logf"
  if ((EUID == 0)); then
    chown postgres:postgres "$pg" "$data" "$run" "$logf"
    chmod a+x "$state" "$state/logs"
  fi
  chmod 0700 "$data"
  chmod 0755 "$run"
  _pg_check_traversable "$data"

  if [[ ! -f "$data/PG_VERSION" ]]; then
    log "initdb $data ($("$bindir/postgres" --version))"
    # Local socket: trust (only reachable by root and the cluster's OS user,
    # see `run` perms); TCP: scram passwords.
    _pg_as "$bindir/initdb" -D "$data" -U "$(_pg_superuser)" -E UTF8 --locale=C.UTF-8 \
      --auth-local=trust --auth-host=scram-sha-256 >>"$logf" 2>&1 \
      || { tail -n 20 "$logf" >&2; die "initdb failed"; }
    grep -q "include_if_exists = 'hsportal.conf'" "$data/postgresql.conf" \
      || echo "include_if_exists = 'hsportal.conf'" >>"$data/postgresql.conf"
  fi

  # Rewritten on every start so the port/paths follow the arguments.
  local conf
  conf=$(cat <<EOF
# Written by dev/lib/postgres.sh on every pg_start; dev/test settings only.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$run'
max_connections = 200
# Durability is not wanted in a throwaway dev/test cluster; speed is.
fsync = off
synchronous_commit = off
full_page_writes = off
password_encryption = scram-sha-256
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
EOF
)
  _pg_as tee "$data/hsportal.conf" >/dev/null <<<"$conf"
  _pg_as tee "$data/pg_hba.conf" >/dev/null <<'EOF'
# Written by dev/lib/postgres.sh. TYPE DATABASE USER ADDRESS METHOD
local   all  all                 trust
host    all  all  127.0.0.1/32   scram-sha-256
host    all  all  ::1/128        scram-sha-256
EOF

  if _pg_running "$state"; then
    local cur_port
    cur_port=$(sed -n 4p "$data/postmaster.pid")
    if [[ "$cur_port" != "$port" ]]; then
      log "postgres in $state runs on port $cur_port, restarting on $port"
      pg_stop "$state"
    else
      # pg_hba/conf may have changed; reload is cheap.
      _pg_as "$bindir/pg_ctl" -D "$data" reload >/dev/null
    fi
  fi
  if ! _pg_running "$state"; then
    if port_in_use "$port"; then die "port $port is already in use (not by this cluster)"; fi
    log "starting postgres on 127.0.0.1:$port (data $data)"
    _pg_as "$bindir/pg_ctl" -D "$data" -l "$logf" -w -t 60 start >/dev/null \
      || { tail -n 20 "$logf" >&2; die "postgres failed to start (see $logf)"; }
  fi

  # Roles and database, idempotently; ALTER on every start keeps attributes
  # and passwords right even if someone changed them.
  pg_psql "$state" -d postgres <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'portal_owner') THEN
    CREATE ROLE portal_owner;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'portal_app') THEN
    CREATE ROLE portal_app;
  END IF;
END $$;
-- Owns the database and tables, runs migrations, creates throwaway test dbs.
ALTER ROLE portal_owner WITH LOGIN PASSWORD 'portal_owner' CREATEDB CREATEROLE
  NOSUPERUSER NOBYPASSRLS;
-- The application: owns nothing, cannot bypass row-level security.
ALTER ROLE portal_app WITH LOGIN PASSWORD 'portal_app' NOSUPERUSER NOBYPASSRLS
  NOCREATEDB NOCREATEROLE NOREPLICATION;
SELECT 'CREATE DATABASE portal OWNER portal_owner'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'portal')
\gexec
ALTER DATABASE portal OWNER TO portal_owner;
SQL

  _pg_write_env "$state" "$port"
  log "postgres ready: $PG_OWNER_URL"
  printf 'PG_OWNER_URL=%s\nPG_APP_URL=%s\n' "$PG_OWNER_URL" "$PG_APP_URL"
}

# pg_stop STATE — fast shutdown (disconnects clients); no-op if not running.
pg_stop() {
  local state="$1"
  [[ -d "$state/pg/data" ]] || return 0
  if _pg_running "$state"; then
    log "stopping postgres in $state"
    _pg_as "$(pg_bindir)/pg_ctl" -D "$state/pg/data" -m fast -w -t 30 stop >/dev/null
  fi
}
