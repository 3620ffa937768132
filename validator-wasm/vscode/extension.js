'use strict';
// Minimal VS Code client: starts ../lsp/server.js (or ippool.serverPath) for YAML and JSON files and
// forwards the `ippool` settings section to it.
const path = require('node:path');
const vscode = require('vscode');
const { LanguageClient, TransportKind } = require('vscode-languageclient/node');

let client;

function activate(context) {
  const configured = vscode.workspace.getConfiguration('ippool').get('serverPath');
  const serverModule = configured || context.asAbsolutePath(path.join('..', 'lsp', 'server.js'));
  const run = { module: serverModule, transport: TransportKind.ipc };
  client = new LanguageClient(
    'ippool',
    'Calico IPPool validator',
    { run, debug: run },
    {
      documentSelector: [
        { scheme: 'file', language: 'yaml' },
        { scheme: 'file', language: 'json' },
        { scheme: 'untitled', language: 'yaml' },
      ],
      synchronize: { configurationSection: 'ippool' },
    },
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client?.stop();
}

module.exports = { activate, deactivate };
