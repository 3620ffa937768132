// One benchmark run (not a test): validates an N-pool file natively and through wasm in Node, prints
// the ratio, the gzipped .wasm size and the time Chromium takes to instantiate the module.
// Knobs: BENCH_POOLS (default 1000), BENCH_RUNS (10), BENCH_PAGES (5); NATIVE_BENCH_BIN (the
// bench_native example binary, set by ../bench).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { serveStatic } from '../scripts/serve.mjs';
import { launchChromium } from '../tests/browser.mjs';
import { crate, loadValidator, pkg } from '../tests/helpers.mjs';

const pools = Number(process.env.BENCH_POOLS ?? 1000);
const runs = Number(process.env.BENCH_RUNS ?? 10);
const pages = Number(process.env.BENCH_PAGES ?? 5);
const nativeBin = process.env.NATIVE_BENCH_BIN;
if (!nativeBin) throw new Error('NATIVE_BENCH_BIN must name the bench_native binary (run validator-wasm/bench/run)');

/** N disjoint IPv4 /24 pools (10.a.b.0/24), alternating encapsulation, as one YAML stream. */
function poolFile(n) {
  const docs = [];
  for (let i = 0; i < n; i++) {
    docs.push(
      [
        'apiVersion: projectcalico.org/v3',
        'kind: IPPool',
        'metadata:',
        `  name: pool-${i}`,
        '  labels:',
        `    team: team-${i % 7}`,
        'spec:',
        `  cidr: 10.${(i >> 8) & 255}.${i & 255}.0/24`,
        '  blockSize: 26',
        `  ipipMode: ${i % 2 ? 'Never' : 'CrossSubnet'}`,
        `  vxlanMode: ${i % 2 ? 'Always' : 'Never'}`,
        '  natOutgoing: true',
        `  nodeSelector: zone == 'zone-${i % 3}'`,
        '',
      ].join('\n'),
    );
  }
  return docs.join('---\n');
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const work = mkdtempSync(join(tmpdir(), 'ippool-bench-'));
try {
  const file = join(work, 'pools.yaml');
  const text = poolFile(pools);
  writeFileSync(file, text);

  const native = JSON.parse(execFileSync(nativeBin, [file, String(runs)], { encoding: 'utf8' }));

  const { validate, validateJson } = loadValidator();
  const options = { name: file };
  // The first calls run V8's baseline wasm code (Liftoff) until the hot functions tier up to
  // optimised code, so the first call is reported on its own and the medians come after a warm-up.
  let start = performance.now();
  validateJson(text, options);
  const wasmFirstMs = performance.now() - start;
  for (let i = 0; i < 5; i++) {
    validateJson(text, options);
    validate(text, options);
  }
  const jsonTimes = [];
  const objectTimes = [];
  for (let i = 0; i < runs; i++) {
    // Like for like with the native side: the report as compact JSON text, as the CLI prints it.
    start = performance.now();
    validateJson(text, options);
    jsonTimes.push(performance.now() - start);
    // What a JavaScript caller usually uses: the report as an object (JSON.parse on top).
    start = performance.now();
    validate(text, options);
    objectTimes.push(performance.now() - start);
  }
  const wasmMs = median(jsonTimes);
  const wasmObjectMs = median(objectTimes);
  const documents = validate(text, options).documents.length;
  if (documents !== native.documents) throw new Error(`wasm saw ${documents} documents, native ${native.documents}`);

  const wasmBytes = readFileSync(join(pkg, 'web', 'validator_wasm_bg.wasm'));
  const gzipped = gzipSync(wasmBytes, { level: 9 }).length;

  const server = await serveStatic(crate);
  const browser = await launchChromium();
  const instantiate = [];
  try {
    for (let i = 0; i < pages; i++) {
      const page = await browser.context.newPage();
      await page.goto(`${server.url}bench/instantiate.html`);
      const result = await page.waitForFunction(() => window.benchResult).then((h) => h.jsonValue());
      instantiate.push(result.instantiateMs);
      await page.close();
    }
  } finally {
    await browser.close();
    await server.close();
  }

  const result = {
    pools,
    bytes: text.length,
    runs,
    nativeMedianMs: native.medianMs,
    wasmNodeMedianMs: Number(wasmMs.toFixed(3)),
    wasmToNativeRatio: Number((wasmMs / native.medianMs).toFixed(2)),
    wasmNodeObjectMedianMs: Number(wasmObjectMs.toFixed(3)),
    wasmNodeFirstCallMs: Number(wasmFirstMs.toFixed(3)),
    wasmBytes: wasmBytes.length,
    wasmGzipBytes: gzipped,
    chromiumInstantiateMedianMs: Number(median(instantiate).toFixed(2)),
    chromiumPages: pages,
  };
  console.log(`pools validated:                        ${pools} (${(text.length / 1024).toFixed(0)} KiB YAML), ${runs} runs`);
  console.log(`native validate + to_json, median:     ${result.nativeMedianMs.toFixed(2)} ms`);
  console.log(`wasm validateJson (Node ${process.versions.node}), median: ${result.wasmNodeMedianMs.toFixed(2)} ms`);
  console.log(`wasm / native:                          ${result.wasmToNativeRatio}x (target ≤ 2x)`);
  console.log(`wasm validate (object), median:         ${result.wasmNodeObjectMedianMs.toFixed(2)} ms`);
  console.log(`wasm first call (before tier-up):       ${result.wasmNodeFirstCallMs.toFixed(2)} ms`);
  console.log(`.wasm size:                             ${wasmBytes.length} bytes, ${gzipped} gzipped (target ≤ 300 KB)`);
  console.log(`Chromium instantiate, median:           ${result.chromiumInstantiateMedianMs} ms over ${pages} page(s) (target < 50 ms)`);
  console.log(JSON.stringify(result));
} finally {
  rmSync(work, { recursive: true, force: true });
}
