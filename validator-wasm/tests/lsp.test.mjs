// The language server over stdio, spoken to with the LSP library's own client side of the protocol.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { corpusDir, crate, loadValidator, require } from './helpers.mjs';

const {
  createProtocolConnection,
  StreamMessageReader,
  StreamMessageWriter,
} = require('vscode-languageserver-protocol/node');

const { validate } = loadValidator();

// The error sits after non-ASCII text on its line, so a byte or code-point column would be wrong.
const INVALID = [
  '# a pool with a block size Calico refuses',
  '{"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": "pool-a", "annotations": {"note": "café 🚀"}}, "spec": {"cidr": "10.0.0.0/16", "blockSize": 33}}',
  '',
].join('\n');
const VALID = INVALID.replace('"blockSize": 33', '"blockSize": 26');
const UNRELATED = 'name: ci\non: [push]\njobs: {}\n';

function startServer(initializationOptions) {
  const child = spawn(process.execPath, [join(crate, 'lsp', 'server.js'), '--stdio'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const connection = createProtocolConnection(
    new StreamMessageReader(child.stdout),
    new StreamMessageWriter(child.stdin),
  );
  const published = new Map();
  const waiters = [];
  connection.onNotification('textDocument/publishDiagnostics', (params) => {
    published.set(params.uri, params);
    for (const w of waiters.splice(0)) w();
  });
  // The server asks for settings; answer with none so initializationOptions apply.
  connection.onRequest('workspace/configuration', (params) => params.items.map(() => null));
  connection.listen();

  /** Resolves with the first publication for `uri` whose document version is `version`. */
  function diagnosticsFor(uri, version) {
    return new Promise((resolve) => {
      const check = () => {
        const p = published.get(uri);
        if (p && p.version === version) resolve(p);
        else waiters.push(check);
      };
      check();
    });
  }

  async function initialize() {
    const result = await connection.sendRequest('initialize', {
      processId: process.pid,
      rootUri: null,
      capabilities: { workspace: { configuration: true } },
      initializationOptions,
    });
    await connection.sendNotification('initialized', {});
    return result;
  }

  async function shutdown() {
    await connection.sendRequest('shutdown');
    await connection.sendNotification('exit');
    await new Promise((resolve) => child.once('exit', resolve));
    connection.dispose();
  }
  return { connection, diagnosticsFor, initialize, shutdown };
}

// Full context, so that a valid pool leaves no diagnostic at all (not even "not checked" infos).
const SETTINGS = {
  clusterCidrs: ['10.0.0.0/8'],
  serviceCidr: '172.30.0.0/16',
  against: join(corpusDir, 'cluster.against.yaml'),
};

test('diagnostics appear for an invalid pool at the right UTF-16 range and clear when fixed', async () => {
  const server = startServer(SETTINGS);
  const init = await server.initialize();
  assert.equal(init.serverInfo.name, 'ippool-lsp');
  assert.ok(init.capabilities.textDocumentSync);

  const uri = 'file:///tmp/ippool-lsp-test/pool.yaml';
  await server.connection.sendNotification('textDocument/didOpen', {
    textDocument: { uri, languageId: 'yaml', version: 1, text: INVALID },
  });
  const opened = await server.diagnosticsFor(uri, 1);
  const expected = validate(INVALID, {
    name: 'pool.yaml',
    clusterCidrs: SETTINGS.clusterCidrs,
    serviceCidr: SETTINGS.serviceCidr,
    against: readFileSync(SETTINGS.against, 'utf8'),
  });
  const wasmDiagnostics = expected.documents.flatMap((d) => d.diagnostics);
  assert.equal(opened.diagnostics.length, wasmDiagnostics.length);

  const blockSize = opened.diagnostics.find((d) => d.severity === 1 && d.range.start.line === 1);
  assert.ok(blockSize, `an error on line 2 (0-based 1): ${JSON.stringify(opened.diagnostics)}`);
  const line = INVALID.split('\n')[1];
  // JavaScript string indices are UTF-16 code units, the LSP default position encoding.
  assert.deepEqual(blockSize.range, {
    start: { line: 1, character: line.indexOf('33') },
    end: { line: 1, character: line.indexOf('33') + 2 },
  });
  assert.equal(blockSize.source, 'ippool');
  assert.match(String(blockSize.code), /^IPP\d{3}$/);

  await server.connection.sendNotification('textDocument/didChange', {
    textDocument: { uri, version: 2 },
    contentChanges: [{ text: VALID }],
  });
  const fixed = await server.diagnosticsFor(uri, 2);
  assert.deepEqual(fixed.diagnostics, [], 'nothing left once blockSize is 26');
  await server.shutdown();
});

test('YAML without IPPools gets no diagnostics', async () => {
  const server = startServer({});
  await server.initialize();
  const uri = 'file:///tmp/ippool-lsp-test/workflow.yaml';
  await server.connection.sendNotification('textDocument/didOpen', {
    textDocument: { uri, languageId: 'yaml', version: 7, text: UNRELATED },
  });
  const published = await server.diagnosticsFor(uri, 7);
  assert.deepEqual(published.diagnostics, []);
  await server.shutdown();
});

test('refused settings are reported once and the manifest is still checked', async () => {
  const server = startServer({ clusterCidrs: ['banana'] });
  const messages = [];
  // vscode-languageserver sends showErrorMessage as a request (it could offer actions).
  server.connection.onNotification('window/showMessage', (params) => messages.push(params));
  server.connection.onRequest('window/showMessageRequest', (params) => {
    messages.push(params);
    return null;
  });
  await server.initialize();
  const uri = 'file:///tmp/ippool-lsp-test/bad-settings.yaml';
  await server.connection.sendNotification('textDocument/didOpen', {
    textDocument: { uri, languageId: 'yaml', version: 1, text: INVALID },
  });
  const published = await server.diagnosticsFor(uri, 1);
  assert.ok(published.diagnostics.some((d) => d.severity === 1 && d.range.start.line === 1), 'blockSize error');
  await server.connection.sendNotification('textDocument/didChange', {
    textDocument: { uri, version: 2 },
    contentChanges: [{ text: VALID }],
  });
  await server.diagnosticsFor(uri, 2);
  assert.equal(messages.length, 1, 'the same settings error is shown once');
  assert.equal(messages[0].type, 1, 'an error message');
  assert.match(messages[0].message, /clusterCidrs\[0\]: "banana" is not a valid CIDR/);
  await server.shutdown();
});
