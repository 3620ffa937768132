// The WebAssembly build and the native CLI give byte-identical compact JSON on the shared corpus.
// The native binary: NATIVE_VALIDATE_BIN (validator-wasm/test builds kubectl-ippool and sets it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cliFlags, corpus, corpusDir, loadValidator, wasmOptions } from './helpers.mjs';

const bin = process.env.NATIVE_VALIDATE_BIN;
const { validateJson } = loadValidator();

test('native kubectl-ippool validate -o json and wasm validateJson agree byte for byte', async (t) => {
  assert.ok(bin && existsSync(bin), `NATIVE_VALIDATE_BIN=${bin} must name the kubectl-ippool binary`);
  const entries = corpus();
  assert.ok(entries.length > 0);
  for (const entry of entries) {
    await t.test(entry.file === '-' ? `${entry.expect.join(' ')} (stdin)` : entry.file, () => {
      const args = ['validate', '-o', 'json', ...cliFlags(entry)];
      const run = spawnSync(bin, args, { cwd: corpusDir, encoding: 'utf8', input: entry.stdin ? entry.text : '' });
      assert.equal(run.error, undefined, `${bin} ${args.join(' ')}: ${run.error}`);
      assert.ok([0, 1].includes(run.status), `exit status ${run.status} (0 clean, 1 findings): ${run.stderr}`);
      const native = run.stdout.replace(/\n$/, '');
      const wasm = validateJson(entry.text, wasmOptions(entry));
      assert.equal(wasm, native, 'wasm and native reports differ');
    });
  }
});
