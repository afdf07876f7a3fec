// The package loads through `import` and `require`, from inside and from a
// consumer's node_modules, and its types compile.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, symlinkSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esm from '@floodgate/client';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const NAMES = [
  'DEFAULT_URL', 'FloodgateClient', 'FloodgateError', 'createClient', 'defaultAttributes',
  'floodgate', 'floodgateExpress', 'floodgateFastify', 'safeValue',
];

test('the ESM and CommonJS entry points export the same objects', () => {
  const cjs = require('@floodgate/client');
  assert.deepEqual(Object.keys(esm).sort(), NAMES);
  assert.deepEqual(Object.keys(cjs).sort(), NAMES);
  for (const name of NAMES) assert.equal(esm[name], cjs[name], name);
  assert.equal(esm.floodgate, esm.floodgateExpress);
});

test('a consumer can require and import the package from its node_modules', () => {
  const app = mkdtempSync(join(tmpdir(), 'floodgate-consumer-'));
  try {
    mkdirSync(join(app, 'node_modules', '@floodgate'), { recursive: true });
    symlinkSync(root, join(app, 'node_modules', '@floodgate', 'client'), 'dir');
    const run = (args) => spawnSync(process.execPath, args, { cwd: app, encoding: 'utf8' });
    const cjs = run(['-e', "const f = require('@floodgate/client'); console.log(typeof f.FloodgateClient, typeof f.floodgateFastify)"]);
    assert.equal(cjs.status, 0, cjs.stderr);
    assert.equal(cjs.stdout.trim(), 'function function');
    const mjs = run([
      '--input-type=module', '-e',
      "import { FloodgateClient, floodgateExpress } from '@floodgate/client'; console.log(new FloodgateClient().url, typeof floodgateExpress)",
    ]);
    assert.equal(mjs.status, 0, mjs.stderr);
    assert.equal(mjs.stdout.trim(), 'http://127.0.0.1:9720 function');
    const deep = run(['-e', "require('@floodgate/client/lib/client.js')"]);
    assert.notEqual(deep.status, 0, 'only the entry points are exported');
  } finally {
    rmSync(app, { recursive: true, force: true });
  }
});

test('the package has no runtime dependencies and publishes its types', () => {
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  assert.equal(manifest.dependencies, undefined);
  assert.equal(manifest.private, false);
  for (const file of ['index.js', 'index.mjs', 'index.d.ts', 'index.d.mts', 'lib/']) {
    assert.ok(manifest.files.includes(file), file);
  }
});

test('the types compile: tsc --noEmit on typed ESM and CommonJS usage (with expected errors)', () => {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const result = spawnSync(process.execPath, [tsc, '-p', join(root, 'test', 'types')], { cwd: root, encoding: 'utf8' });
  assert.equal(result.status, 0, `${result.stdout}${result.stderr}`);
});
