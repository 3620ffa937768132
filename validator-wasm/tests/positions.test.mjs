// The two position conversions: report → CodeMirror offsets (playground) and report → LSP ranges.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Text } from '@codemirror/state';
import { offsetOf, rangeOf } from '../www/src/diagnostics.js';
import { require } from './helpers.mjs';

const { toLspDiagnostics, mentionsIpPool } = require('../lsp/convert.js');
const DiagnosticSeverity = { Error: 1, Warning: 2, Information: 3, Hint: 4 };

const source = 'kind: IPPool\nnote: "🚀 é"  x: 33\n\n  \nend';
const doc = Text.of(source.split('\n'));
const diag = (line, column, endLine, endColumn, extra = {}) => ({
  code: 'IPP000',
  severity: 'error',
  path: 'spec.x',
  line,
  column,
  endLine,
  endColumn,
  message: 'm',
  ...extra,
});

test('CodeMirror offsets are line start + UTF-16 column - 1', () => {
  const line2 = source.split('\n')[1];
  const at = line2.indexOf('33');
  const { from, to } = rangeOf(doc, diag(2, at + 1, 2, at + 3));
  assert.equal(doc.sliceString(from, to), '33');
  assert.equal(offsetOf(doc, 1, 1), 0);
  assert.equal(offsetOf(doc, 99, 1), doc.length, 'beyond the last line clamps to the end');
  assert.equal(offsetOf(doc, 1, 999), doc.line(1).to, 'beyond the line end clamps to it');
});

test('an empty span widens to the text of its line so that it can be underlined', () => {
  const { from, to } = rangeOf(doc, diag(1, 1, 1, 1));
  assert.equal(doc.sliceString(from, to), 'kind: IPPool');
  const blank = rangeOf(doc, diag(4, 1, 4, 1));
  assert.equal(blank.to - blank.from, 1, 'a blank line gets one character');
});

test('LSP ranges are 0-based with UTF-16 characters and keep code, severity and hint', () => {
  const report = {
    documents: [
      {
        source: 'a.yaml', index: 0, apiVersion: null, kind: 'IPPool', name: 'a',
        diagnostics: [diag(2, 12, 2, 14, { hint: 'use 26' }), diag(1, 1, 1, 1, { severity: 'info' })],
      },
    ],
    errors: 1,
    warnings: 0,
  };
  const [first, second] = toLspDiagnostics(report, DiagnosticSeverity);
  assert.deepEqual(first.range, { start: { line: 1, character: 11 }, end: { line: 1, character: 13 } });
  assert.equal(first.severity, DiagnosticSeverity.Error);
  assert.equal(first.code, 'IPP000');
  assert.equal(first.message, 'm\nhint: use 26');
  assert.equal(second.severity, DiagnosticSeverity.Information);
});

test('only texts that mention IPPool are validated by the server', () => {
  assert.ok(mentionsIpPool('kind: IPPool'));
  assert.ok(mentionsIpPool('{"kind":"IPPoolList"}'));
  assert.ok(!mentionsIpPool('kind: Deployment'));
  assert.ok(!mentionsIpPool('kind: IPPoolish'));
});
