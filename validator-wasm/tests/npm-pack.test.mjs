// The npm package as a user gets it: `npm pack`, installed from the tarball into a scratch project,
// imported with ESM and CommonJS, the browser build initialised from its bytes, and its types
// type-checked by TypeScript.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crate, loadValidator, pkg } from './helpers.mjs';

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const POOL = 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p\nspec:\n  cidr: 10.0.0.0/16\n  blockSize: 33\n';

test('npm pack tarball installs and imports from a scratch project', async (t) => {
  const scratch = mkdtempSync(join(tmpdir(), 'ippool-npm-'));
  t.after(() => rmSync(scratch, { recursive: true, force: true }));
  const packed = JSON.parse(
    execFileSync(npm, ['pack', '--json', '--pack-destination', scratch], { cwd: join(pkg, 'npm'), encoding: 'utf8' }),
  );
  const tarball = join(scratch, packed[0].filename);
  const files = packed[0].files.map((f) => f.path).sort();
  for (const f of ['README.md', 'package.json', 'node/validator_wasm.js', 'node/validator_wasm_bg.wasm',
    'node/validator_wasm.d.ts', 'web/validator_wasm.js', 'web/validator_wasm_bg.wasm', 'web/validator_wasm.d.ts']) {
    assert.ok(files.includes(f), `the tarball holds ${f}`);
  }

  const app = join(scratch, 'app');
  execFileSync('mkdir', ['-p', app]);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'scratch-app', private: true, type: 'module' }));
  execFileSync(npm, ['install', '--no-audit', '--no-fund', '--offline', tarball], { cwd: app, stdio: 'pipe' });

  const expected = loadValidator().validateJson(POOL, { name: 'p.yaml' });
  writeFileSync(
    join(app, 'esm.mjs'),
    `import { validateJson, rules, version } from 'ippool-validator';
     process.stdout.write(JSON.stringify({ report: validateJson(${JSON.stringify(POOL)}, { name: 'p.yaml' }), rules: rules().length, version: version() }));`,
  );
  writeFileSync(
    join(app, 'cjs.cjs'),
    `const { validateJson } = require('ippool-validator');
     process.stdout.write(validateJson(${JSON.stringify(POOL)}, { name: 'p.yaml' }));`,
  );
  writeFileSync(
    join(app, 'web.mjs'),
    `import { readFileSync } from 'node:fs';
     import { initSync, validateJson } from 'ippool-validator/web';
     initSync({ module: readFileSync(new URL(import.meta.resolve('ippool-validator/validator_wasm_bg.wasm'))) });
     process.stdout.write(validateJson(${JSON.stringify(POOL)}, { name: 'p.yaml' }));`,
  );
  const esm = JSON.parse(execFileSync(process.execPath, ['esm.mjs'], { cwd: app, encoding: 'utf8' }));
  assert.equal(esm.report, expected);
  assert.equal(esm.rules, loadValidator().rules().length);
  assert.equal(esm.version, loadValidator().version());
  assert.equal(execFileSync(process.execPath, ['cjs.cjs'], { cwd: app, encoding: 'utf8' }), expected);
  assert.equal(execFileSync(process.execPath, ['web.mjs'], { cwd: app, encoding: 'utf8' }), expected);

  // The published types: correct use compiles, misuse is refused.
  writeFileSync(
    join(app, 'check.ts'),
    `import { validate, rules, type Report, type Diagnostic, type RuleInfo } from 'ippool-validator';
     const report: Report = validate('kind: IPPool', { clusterCidrs: ['10.0.0.0/8'], operation: 'create' });
     const first: Diagnostic | undefined = report.documents[0]?.diagnostics[0];
     const line: number | undefined = first?.line;
     const all: RuleInfo[] = rules();
     // @ts-expect-error unknown option
     validate('x', { clusterCidr: ['10.0.0.0/8'] });
     // @ts-expect-error operation is an enum
     validate('x', { operation: 'replace' });
     // @ts-expect-error text is a string
     validate(42);
     export { line, all };`,
  );
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', skipLibCheck: false },
      files: ['check.ts'],
    }),
  );
  execFileSync(process.execPath, [join(crate, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], {
    cwd: app,
    encoding: 'utf8',
  });
});
