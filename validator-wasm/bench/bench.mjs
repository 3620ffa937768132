// One benchmark run (not a test), run by ./run under bench-record: validates an N-pool file natively
// and through wasm in Node, interleaved (native, wasm, native, wasm, …) after the same warm-up on both
// sides, plus the gzipped .wasm size and the time Chromium takes to instantiate the module. The native
// side is bench_native, built with the wasm build's own profile and optimisation level (pkg/build.json).
// Knobs: BENCH_POOLS (default 1000), BENCH_RUNS (10), BENCH_WARMUP (5), BENCH_PAGES (5);
// NATIVE_BENCH_BIN and BENCH_RECORD_FIGURES are set by ./run and bench-record.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { gzipSync } from 'node:zlib';
import { serveStatic } from '../scripts/serve.mjs';
import { launchChromium } from '../tests/browser.mjs';
import { crate, loadValidator, pkg } from '../tests/helpers.mjs';

const pools = Number(process.env.BENCH_POOLS ?? 1000);
const runs = Number(process.env.BENCH_RUNS ?? 10);
const warmup = Number(process.env.BENCH_WARMUP ?? 5);
const pages = Number(process.env.BENCH_PAGES ?? 5);
const nativeBin = process.env.NATIVE_BENCH_BIN;
const figuresFile = process.env.BENCH_RECORD_FIGURES;
if (!nativeBin || !figuresFile) throw new Error('run validator-wasm/bench/run, which sets NATIVE_BENCH_BIN and BENCH_RECORD_FIGURES');

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
const round = (x, digits = 3) => Number(x.toFixed(digits));

/** The native process: one validation per request, its own timing in the answer. */
function startNative(file) {
  const child = spawn(nativeBin, [file], { stdio: ['pipe', 'pipe', 'inherit'] });
  const answers = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  return {
    async run() {
      child.stdin.write('run\n');
      const { value, done } = await answers.next();
      if (done) throw new Error(`${nativeBin} stopped answering`);
      return JSON.parse(value);
    },
    async close() {
      child.stdin.end();
      const code = await new Promise((resolve) => child.on('close', resolve));
      if (code !== 0) throw new Error(`${nativeBin} exited ${code}`);
    },
  };
}

const work = mkdtempSync(join(tmpdir(), 'ippool-bench-'));
try {
  const file = join(work, 'pools.yaml');
  const text = poolFile(pools);
  writeFileSync(file, text);
  const build = JSON.parse(readFileSync(join(pkg, 'build.json'), 'utf8'));

  const { validate, validateJson } = loadValidator();
  const options = { name: file };
  // What the figures are about: both sides read every pool and find it valid.
  const report = validate(text, options);
  if (report.documents.length !== pools || report.errors !== 0) {
    throw new Error(`wasm: ${report.documents.length} documents, ${report.errors} errors for ${pools} valid pools`);
  }
  const wasmRun = (call) => {
    const start = performance.now();
    call(text, options);
    return performance.now() - start;
  };

  const native = startNative(file);
  // The first call of each side on its own: V8 runs baseline wasm code (Liftoff) until the hot functions
  // tier up, and the native process has cold caches. The report call (validate, an object) is the one a
  // JavaScript caller usually makes; validateJson (compact JSON text) is like for like with the native
  // side, which serialises as the CLI prints.
  const nativeFirst = await native.run();
  if (nativeFirst.documents !== pools || nativeFirst.errors !== 0) {
    throw new Error(`native: ${nativeFirst.documents} documents, ${nativeFirst.errors} errors for ${pools} valid pools`);
  }
  const wasmFirstMs = wasmRun(validateJson);
  for (let i = 0; i < warmup; i++) {
    await native.run();
    wasmRun(validateJson);
    wasmRun(validate);
  }
  const nativeTimes = [];
  const jsonTimes = [];
  const objectTimes = [];
  for (let i = 0; i < runs; i++) {
    nativeTimes.push((await native.run()).ms);
    jsonTimes.push(wasmRun(validateJson));
    objectTimes.push(wasmRun(validate));
  }
  await native.close();
  const nativeMs = median(nativeTimes);
  const wasmMs = median(jsonTimes);

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

  const figures = {
    pools,
    bytes: text.length,
    runs,
    warmupRuns: warmup,
    order: 'interleaved per run: native, wasm validateJson, wasm validate',
    build,
    node: process.versions.node,
    nativeFirstCallMs: round(nativeFirst.ms),
    wasmNodeFirstCallMs: round(wasmFirstMs),
    nativeMedianMs: round(nativeMs),
    wasmNodeMedianMs: round(wasmMs),
    wasmToNativeRatio: round(wasmMs / nativeMs, 2),
    wasmNodeObjectMedianMs: round(median(objectTimes)),
    nativeMs: nativeTimes.map((t) => round(t)),
    wasmNodeMs: jsonTimes.map((t) => round(t)),
    wasmBytes: wasmBytes.length,
    wasmGzipBytes: gzipped,
    chromiumInstantiateMedianMs: round(median(instantiate), 2),
    chromiumPages: pages,
  };
  console.log(`pools validated:                        ${pools} (${(text.length / 1024).toFixed(0)} KiB YAML), ${runs} interleaved runs after ${warmup} warm-up`);
  console.log(`both sides built with:                  profile ${build.profile}, opt-level ${build.optLevel}; wasm-opt: ${build.wasmOpt ?? 'none'}`);
  console.log(`native validate + to_json, median:     ${figures.nativeMedianMs.toFixed(2)} ms (first call ${figures.nativeFirstCallMs.toFixed(2)} ms)`);
  console.log(`wasm validateJson (Node ${process.versions.node}), median: ${figures.wasmNodeMedianMs.toFixed(2)} ms (first call ${figures.wasmNodeFirstCallMs.toFixed(2)} ms)`);
  console.log(`wasm / native:                          ${figures.wasmToNativeRatio}x (target ≤ 2x)`);
  console.log(`wasm validate (object), median:         ${figures.wasmNodeObjectMedianMs.toFixed(2)} ms`);
  console.log(`.wasm size:                             ${wasmBytes.length} bytes, ${gzipped} gzipped (target ≤ 300 KB)`);
  console.log(`Chromium instantiate, median:           ${figures.chromiumInstantiateMedianMs} ms over ${pages} page(s) (target < 50 ms)`);
  writeFileSync(figuresFile, JSON.stringify(figures));
} finally {
  rmSync(work, { recursive: true, force: true });
}
