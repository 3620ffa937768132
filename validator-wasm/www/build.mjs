// Bundles the playground into www/dist with esbuild; the .wasm is copied next to the bundle, which
// loads it relative to its own URL, and ippool-rules/RULES.md's per-code text becomes rules-doc.json
// for the rules page. Run by ../build after the wasm package is built.
import * as esbuild from 'esbuild';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rulesDoc } from './rules-doc.mjs';

const www = dirname(fileURLToPath(import.meta.url));
const wasm = join(www, '..', 'pkg', 'web', 'validator_wasm_bg.wasm');
if (!existsSync(wasm)) {
  console.error(`www/build.mjs: ${wasm} is missing; run validator-wasm/build first`);
  process.exit(1);
}
const dist = join(www, 'dist');
await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });
await esbuild.build({
  entryPoints: [join(www, 'src', 'main.js'), join(www, 'src', 'rules-page.js')],
  outdir: dist,
  bundle: true,
  splitting: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: true,
  legalComments: 'linked',
  logLevel: 'warning',
});
await copyFile(wasm, join(dist, 'validator_wasm_bg.wasm'));
const rulesMd = join(www, '..', '..', 'ippool-rules', 'RULES.md');
await writeFile(join(dist, 'rules-doc.json'), JSON.stringify(rulesDoc(await readFile(rulesMd, 'utf8'))));
console.log(`playground bundled into ${dist}`);
