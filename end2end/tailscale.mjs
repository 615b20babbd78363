// A real tailscaled for the browser tests (dev/lib/tailscale.sh), in a state directory of
// its own, stopped and removed by `stop()`.

import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { assert, eventually } from './lib.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Runs a dev/lib/tailscale.sh function; returns its stdout. */
function ts(fn, ...args) {
  return execFileSync(
    'bash',
    ['-c', 'set -euo pipefail; source "$1"; shift; "$@"', 'bash', path.join(ROOT, 'dev/lib/tailscale.sh'), fn, ...args],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 90_000 },
  );
}

/** A tailscaled of this test, stopped and removed afterwards. */
export function daemon() {
  // Short: unix socket paths are limited to 107 bytes.
  const state = mkdtempSync('/tmp/e2e-ts-');
  return {
    state,
    up(loginServer, key, hostname) {
      ts('ts_start', state, 'd');
      ts('ts_up', state, 'd', loginServer, key, hostname);
    },
    status() {
      return ts('ts_status_json', state, 'd');
    },
    /** `tailscale up` without a key, in the background; resolves to the URL it shows. */
    async upInteractive(loginServer, hostname) {
      ts('ts_start', state, 'd');
      const child = spawn(
        'bash',
        ['-c', 'source "$1"; shift; ts_cli "$@"', 'bash', path.join(ROOT, 'dev/lib/tailscale.sh'), state, 'd', 'up',
          `--login-server=${loginServer}`, `--hostname=${hostname}`, '--accept-dns=false', '--timeout=120s'],
        { stdio: 'ignore' },
      );
      const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
      const url = await eventually(() => {
        const authUrl = JSON.parse(ts('ts_status_json', state, 'd')).AuthURL;
        assert.ok(authUrl, 'no registration URL yet');
        return authUrl;
      }, { timeout: 30_000, interval: 200 });
      return { url, exited };
    },
    stop() {
      try {
        execFileSync('bash', ['-c', 'source "$1"; stop_all "$2"', 'bash', path.join(ROOT, 'dev/lib/common.sh'), state]);
      } catch {}
      rmSync(state, { recursive: true, force: true });
    },
  };
}

