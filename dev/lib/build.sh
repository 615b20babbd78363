# shellcheck shell=bash
# Building the portal: the server binary (feature ssr), the browser bundle (feature
# hydrate → wasm-bindgen) and the stylesheet (Tailwind v4 from npm). We drive cargo,
# wasm-bindgen and Tailwind directly instead of cargo-leptos: it is three commands,
# and it saves a 15-minute cargo-leptos build on every fresh machine
# (docs/decisions/0002-build-without-cargo-leptos.md).

# shellcheck source=dev/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# Cargo's build cache lives outside the repo so fresh clones on this machine reuse it.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PORTAL_CACHE/target}"
SITE_ROOT="$ROOT/target/site"
export SITE_ROOT

# The shared cache grows by gigabytes a day of work: incremental state (useless to a
# checkout at another path, such as CI's clean clone) and the test executables of every
# earlier build (one per source change and flag set). Drops day-old incremental state,
# and every test executable but the newest of its name once it is an hour old (an hour:
# a test run elsewhere on the machine may be about to start it). Cargo rebuilds what it
# still needs.
prune_build_cache() {
  local dir="$CARGO_TARGET_DIR/debug"
  [[ -d $dir ]] || return 0
  # Files younger than an hour may belong to a build running next to us; when the disk
  # runs short (under 20 GiB free) that courtesy goes: a full disk fails every build.
  local age=(-mmin +60) free_kib
  free_kib=$(df -Pk "$CARGO_TARGET_DIR" | awk 'NR == 2 { print $4 }')
  if ((free_kib < 20 * 1024 * 1024)); then
    log "build cache: $((free_kib / 1024 / 1024)) GiB free; pruning hard"
    age=()
    rm -rf "$dir/incremental"
  fi
  find "$dir/incremental" -mindepth 1 -maxdepth 1 -mtime +0 -exec rm -rf {} + 2>/dev/null || true
  find "$dir/deps" -maxdepth 1 -type f -perm -u+x -regextype posix-extended \
    -regex '.*-[0-9a-f]{16}' -printf '%T@ %p\n' 2>/dev/null \
    | sort -rn \
    | awk '{ name = $2; sub(/-[0-9a-f]+$/, "", name); if (seen[name]++) print $2 }' \
    | while read -r old; do
        find "$old" "${age[@]}" -delete 2>/dev/null || true
      done
  # The workspace's own libraries get a new hash for every checkout path (each clean
  # clone) and feature set; half a gigabyte each. Keep the newest of each.
  local crate
  for crate in app server; do
    find "$dir/deps" -maxdepth 1 -name "lib$crate-*.rlib" "${age[@]}" -printf '%T@ %p\n' 2>/dev/null \
      | sort -rn | tail -n +2 | cut -d' ' -f2- | xargs -r rm -f
  done
}

ensure_rust_tools() {
  command -v cargo >/dev/null || die "cargo not found: install Rust with rustup first"
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    log "adding the wasm32-unknown-unknown Rust target"
    rustup target add wasm32-unknown-unknown >&2
  fi
  # wasm-bindgen's CLI must equal the wasm-bindgen crate version in Cargo.lock.
  local want have
  want="$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/, ""); print; exit}' "$ROOT/Cargo.lock")"
  have="$("$CACHE_BIN/wasm-bindgen" --version 2>/dev/null | awk '{print $2}' || true)"
  if [[ "$have" != "$want" ]]; then
    log "installing wasm-bindgen-cli $want (a few minutes, once)"
    cargo install wasm-bindgen-cli --version "$want" --root "$PORTAL_CACHE" >&2
  fi
}

ensure_node_modules() {
  command -v npm >/dev/null || ensure_apt nodejs npm
  local stamp="$ROOT/node_modules/.package-lock.json"
  if [[ ! -f "$stamp" || "$ROOT/package-lock.json" -nt "$stamp" ]]; then
    log "installing npm packages"
    # `npm install`, not `npm ci`: npm 11 calls a lock file without the other
    # platforms' optional Tailwind binaries "out of sync" and `ci` refuses it; `install`
    # honours the same lock (and leaves it unchanged).
    (cd "$ROOT" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund >&2)
  fi
}

# build_portal [debug|release]
build_portal() {
  local mode="${1:-debug}" cargo_flags=() wasm_profile=debug
  if [[ "$mode" == release ]]; then
    cargo_flags=(--release)
    wasm_profile=release
  fi
  ensure_rust_tools
  ensure_node_modules
  log "building the server ($mode)"
  (cd "$ROOT" && cargo build -p server "${cargo_flags[@]}" >&2)
  log "building the browser bundle ($mode)"
  (cd "$ROOT" && cargo build -p app --lib --target wasm32-unknown-unknown \
    --no-default-features --features hydrate "${cargo_flags[@]}" >&2)
  mkdir -p "$SITE_ROOT/pkg"
  "$CACHE_BIN/wasm-bindgen" --target web --no-typescript --out-name portal \
    --out-dir "$SITE_ROOT/pkg" \
    "$CARGO_TARGET_DIR/wasm32-unknown-unknown/$wasm_profile/app.wasm"
  log "building the stylesheet"
  (cd "$ROOT" && node_modules/.bin/tailwindcss -i style/main.css -o "$SITE_ROOT/pkg/portal.css" --minify 2>/dev/null)
  cp -r "$ROOT/public/." "$SITE_ROOT/"
  PORTAL_BIN="$CARGO_TARGET_DIR/$([[ $mode == release ]] && echo release || echo debug)/portal"
  export PORTAL_BIN
}
