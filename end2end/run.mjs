#!/usr/bin/env node
// Runs the browser end-to-end suite: `node end2end/run.mjs [extra node --test args]`.
// Same as `node --test --test-concurrency=2 end2end/tests/` from the repository root.
// PORTAL_URL and SCREENSHOT_DIR are passed through (see end2end/lib.mjs).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const tests = path.join(here, 'tests');
const files = readdirSync(tests)
  .filter((f) => f.endsWith('.test.mjs'))
  .sort()
  .map((f) => path.join(tests, f));
const r = spawnSync(
  process.execPath,
  ['--test', '--test-concurrency=2', ...process.argv.slice(2), ...files],
  { stdio: 'inherit' },
);
process.exit(r.status ?? 1);
