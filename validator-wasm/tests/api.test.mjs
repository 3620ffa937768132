// The WebAssembly API through its Node build: every rule code, positions, multi-document input,
// garbage, and refused options.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { codesOf, corpus, loadValidator, spanText, wasmOptions } from './helpers.mjs';

const wasm = loadValidator();
const { addressMap, validate, validateJson, rules, version } = wasm;

const POOL = (name, spec) =>
  `apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: ${name}\nspec:\n${spec}`;

test('version() is the crate version', () => {
  assert.match(version(), /^\d+\.\d+\.\d+/);
});

test('rules() lists unique IPPnnn codes with a severity and a summary', () => {
  const list = rules();
  assert.ok(list.length > 0);
  const codes = list.map((r) => r.code);
  assert.equal(new Set(codes).size, codes.length, 'codes are unique');
  for (const r of list) {
    assert.match(r.code, /^IPP\d{3}$/);
    assert.ok(['error', 'warning', 'info'].includes(r.severity), r.code);
    assert.ok(r.summary.length > 10, `${r.code} has a summary`);
  }
});

// Codes whose context only a live cluster supplies; the wasm options (like `kubectl-ippool validate`'s
// flags) have no way to state it.
const LIVE_CLUSTER_ONLY = {
  IPP051: 'pod CIDRs inferred from the cluster (node podCIDRs, kubeadm config) rather than given',
  IPP072: 'whether workloads exist',
};

test('every rule code is produced by some corpus manifest', () => {
  const seen = new Map();
  for (const entry of corpus()) {
    const codes = codesOf(validate(entry.text, wasmOptions(entry)));
    for (const code of entry.expect) {
      assert.ok(codes.has(code), `${entry.file} promises ${code}; got ${[...codes].join(' ') || 'nothing'}`);
    }
    for (const code of codes) seen.set(code, entry.file);
  }
  const missing = rules()
    .map((r) => r.code)
    .filter((code) => !seen.has(code));
  assert.deepEqual(missing, Object.keys(LIVE_CLUSTER_ONLY), 'rule codes no corpus manifest produces');
});

test('each diagnostic of the corpus has a sane position and a code from the catalogue', () => {
  const catalogue = new Map(rules().map((r) => [r.code, r]));
  for (const entry of corpus()) {
    const lines = entry.text.split('\n');
    for (const doc of validate(entry.text, wasmOptions(entry)).documents) {
      assert.equal(doc.source, entry.file);
      for (const d of doc.diagnostics) {
        const where = `${entry.file}:${d.line}:${d.column} ${d.code}`;
        assert.ok(catalogue.has(d.code), `${where}: code not in rules()`);
        assert.equal(d.severity, catalogue.get(d.code).severity, `${where}: severity as catalogued`);
        assert.ok(d.line >= 1 && d.line <= lines.length, `${where}: line in range`);
        assert.ok(d.column >= 1 && d.column <= lines[d.line - 1].length + 1, `${where}: column in range`);
        assert.ok(
          d.endLine > d.line || (d.endLine === d.line && d.endColumn >= d.column),
          `${where}: end after start`,
        );
      }
    }
  }
});

test('columns count UTF-16 code units after non-ASCII text', () => {
  // "é" is one UTF-16 unit but two UTF-8 bytes; "🚀" is two UTF-16 units, four bytes, one code point.
  const text = [
    '# Größe: a pool with an invalid block size',
    '{"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": "pool-a", "annotations": {"note": "café 🚀"}}, "spec": {"cidr": "10.0.0.0/16", "blockSize": 33}}',
  ].join('\n');
  const report = validate(text, { name: 'utf16.yaml' });
  const d = report.documents[0].diagnostics.find((x) => x.path === 'spec.blockSize');
  assert.ok(d, JSON.stringify(report));
  assert.equal(d.line, 2);
  assert.equal(d.column, text.split('\n')[1].indexOf('33') + 1);
  assert.equal(spanText(text, d), '33');
});

test('positions in a YAML block document point at the offending value', () => {
  const text = POOL('größe-ü', '  cidr: 10.0.0.0/16\n  blockSize: 33\n');
  const report = validate(text, { name: 'block.yaml' });
  const d = report.documents[0].diagnostics.find((x) => x.path === 'spec.blockSize');
  assert.ok(d, JSON.stringify(report));
  assert.deepEqual([d.line, d.column, d.endLine, d.endColumn], [7, 14, 7, 16]);
  assert.ok(report.errors >= 1);
});

test('a multi-document stream reports each document with its index and name', () => {
  const text = [
    POOL('good', '  cidr: 10.1.0.0/16\n'),
    POOL('bad', '  cidr: 10.2.0.0/16\n  blockSize: 33\n'),
    POOL('also-good', '  cidr: 10.3.0.0/16\n'),
  ].join('---\n');
  const report = validate(text, { name: 'multi.yaml' });
  assert.deepEqual(
    report.documents.map((d) => [d.index, d.name, d.kind]),
    [
      [0, 'good', 'IPPool'],
      [1, 'bad', 'IPPool'],
      [2, 'also-good', 'IPPool'],
    ],
  );
  const bad = report.documents[1].diagnostics.find((x) => x.path === 'spec.blockSize');
  assert.ok(bad);
  assert.equal(text.split('\n')[bad.line - 1], '  blockSize: 33');
  assert.ok(!report.documents[0].diagnostics.some((x) => x.severity === 'error'));
});

test('garbage input gives diagnostics, never a trap', () => {
  const inputs = [
    '',
    '\u0000\u0001\u0002',
    '{{{{',
    ': : :',
    'kind: IPPool\nspec: [1, 2',
    '- a\n- b\n',
    '"unterminated',
    'a: &x [*x]',
    `${'['.repeat(5000)}${']'.repeat(5000)}`,
    '\uFEFFapiVersion: projectcalico.org/v3\nkind: IPPool\n',
    'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: x}\nspec: {cidr: 10.0.0.0/33}',
    '\ud800 lone surrogate',
    Buffer.from([0xc3, 0x28, 0xa0, 0xa1]).toString('latin1'),
  ];
  for (const text of inputs) {
    const report = validate(text, { name: 'garbage.yaml' });
    assert.ok(Array.isArray(report.documents), JSON.stringify(text).slice(0, 40));
    assert.equal(typeof report.errors, 'number');
  }
  // The module still works after all of that.
  assert.ok(validate(POOL('p', '  cidr: 10.0.0.0/16\n')).documents.length === 1);
});

test('validateJson is the compact JSON of validate', () => {
  const text = POOL('p', '  cidr: 10.0.0.0/16\n  blockSize: 33\n');
  const options = { name: 'p.yaml', clusterCidrs: ['10.0.0.0/8'] };
  assert.equal(validateJson(text, options), JSON.stringify(validate(text, options)));
});

test('refused options throw an Error naming the option and the fix', () => {
  const text = POOL('p', '  cidr: 10.0.0.0/16\n');
  const cases = [
    [{ clusterCidrs: ['10.0.0.0/8', 'not-a-cidr'] }, /clusterCidrs\[1\].*not-a-cidr/],
    [{ clusterCidrs: ['10.0.0.1/8'] }, /clusterCidrs\[0\].*10\.0\.0\.1\/8/],
    [{ serviceCidr: '300.0.0.0/12' }, /serviceCidr/],
    [{ operation: 'replace' }, /replace.*create.*update.*delete|unknown variant/],
    [{ operation: 'update' }, /options\.old is missing/],
    [{ operation: 'delete', old: text }, /options\.old is only used with operation "update"/],
    [{ old: `${text}---\n${text}` }, /exactly one IPPool.*found 2/],
    [{ clusterCidr: ['10.0.0.0/8'] }, /unknown field `clusterCidr`/],
    [{ clusterCidrs: '10.0.0.0/8' }, /clusterCidrs|sequence/],
  ];
  for (const [options, message] of cases) {
    assert.throws(() => validate(text, options), (err) => {
      assert.ok(err instanceof Error, `${JSON.stringify(options)} throws an Error`);
      assert.match(err.message, message);
      return true;
    });
  }
  assert.throws(() => validate(42), { name: 'TypeError', message: /text must be a string.*got number/ });
  assert.throws(() => validate(text, 'x'), { name: 'TypeError', message: /options must be an object/ });
  assert.throws(() => validate(text, [1]), { name: 'TypeError', message: /got an array/ });
  const cyclic = {};
  cyclic.self = cyclic;
  assert.throws(() => validate(text, cyclic), { name: 'TypeError', message: /cannot be read as JSON/ });
  assert.throws(() => addressMap(42), { name: 'TypeError', message: /^addressMap\(text, options\): text must be a string/ });
  assert.throws(() => addressMap(text, { clusterCidrs: ['10.0.0.1/8'] }), /clusterCidrs\[0\]/);
  assert.match(addressMap(text), /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" class="address-map"/);
  // undefined and null mean no options.
  assert.equal(validate(text, undefined).documents.length, 1);
  assert.equal(validate(text, null).documents.length, 1);
});

test('an unreadable options.against throws with its report attached', () => {
  const text = POOL('p', '  cidr: 10.0.0.0/16\n');
  assert.throws(
    () => validate(text, { against: 'apiVersion: [unclosed' }),
    (err) => {
      assert.match(err.message, /options\.against/);
      assert.ok(err.report && Array.isArray(err.report.documents), 'error.report is a report');
      assert.ok(err.report.errors >= 1);
      return true;
    },
  );
});

test('an update without a change to the CIDR validates against the old pool', () => {
  const old = POOL('p', '  cidr: 10.0.0.0/16\n  blockSize: 26\n');
  const report = validate(old, { operation: 'update', old });
  assert.equal(report.errors, 0, JSON.stringify(report));
});

test('the Calico example pools are valid inside their cluster CIDRs', () => {
  const entry = corpus().find((e) => e.file === 'calico-examples.yaml');
  const report = validate(entry.text, wasmOptions(entry));
  assert.equal(report.errors, 0, JSON.stringify(report));
  assert.equal(report.warnings, 0, JSON.stringify(report));
  assert.deepEqual(report.documents.map((d) => d.name), ['default-ipv4-ippool', 'new-pool']);
});

test('findings inside an IPPoolList are addressed by item path', () => {
  const entry = corpus().find((e) => e.file === 'list-items.json');
  const report = validate(entry.text, wasmOptions(entry));
  const paths = report.documents.flatMap((d) => d.diagnostics.filter((x) => x.severity === 'error').map((x) => x.path));
  assert.deepEqual(paths.sort(), ['items[1].spec.blockSize', 'items[1].spec.ipipMode']);
  const blockSize = report.documents.flatMap((d) => d.diagnostics).find((x) => x.path === 'items[1].spec.blockSize');
  assert.equal(spanText(entry.text, blockSize), '130');
});
