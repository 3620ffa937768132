#!/usr/bin/env node
// Language server publishing the ippool validator's diagnostics for YAML/JSON documents that hold
// Calico IPPools. The checks are the Rust rules compiled to WebAssembly (the Node build), so an editor
// shows exactly what `kubectl-ippool validate` prints. Transport: --stdio (or --node-ipc, --socket=N).
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { fileURLToPath } = require('node:url');
const {
  createConnection,
  DiagnosticSeverity,
  ProposedFeatures,
  TextDocuments,
  TextDocumentSyncKind,
} = require('vscode-languageserver/node');
const { TextDocument } = require('vscode-languageserver-textdocument');
const { loadValidator } = require('./validator');
const { toLspDiagnostics, mentionsIpPool } = require('./convert');

const validator = loadValidator();
const connection = createConnection(ProposedFeatures.all);
const documents = new TextDocuments(TextDocument);

/** Settings under the `ippool` section; initializationOptions seed them for clients without pull config. */
let initSettings = {};
let pushedSettings;
let pullConfiguration = false;
/** Folder that a relative `against` path is resolved from. */
let workspaceRoot = process.cwd();
const reportedSettingsErrors = new Set();

connection.onInitialize((params) => {
  // Accept both `{ clusterCidrs }` and `{ ippool: { clusterCidrs } }`: editors differ in how they nest it.
  const init = params.initializationOptions ?? {};
  initSettings = init.ippool ?? init;
  pullConfiguration = Boolean(params.capabilities.workspace?.configuration);
  const rootUri = params.workspaceFolders?.[0]?.uri ?? params.rootUri;
  if (rootUri?.startsWith('file:')) workspaceRoot = fileURLToPath(rootUri);
  return {
    capabilities: { textDocumentSync: TextDocumentSyncKind.Incremental },
    serverInfo: { name: 'ippool-lsp', version: validator.version() },
  };
});

async function settingsFor(uri) {
  if (pushedSettings) return pushedSettings;
  if (pullConfiguration) {
    try {
      const pulled = await connection.workspace.getConfiguration({ scopeUri: uri, section: 'ippool' });
      if (pulled) return { ...initSettings, ...pulled };
    } catch (err) {
      connection.console.warn(`ippool: workspace/configuration failed, using initializationOptions: ${err.message}`);
    }
  }
  return initSettings;
}

/**
 * validate() options from the settings. `against` names a snapshot file of the cluster's pools and
 * IPAM blocks (e.g. `kubectl get ippools,ipamblocks -o yaml > cluster.yaml`), read on every check so
 * that a refreshed snapshot applies at once.
 */
function optionsFrom(settings, name) {
  const options = { name };
  const cidrs = settings.clusterCidrs;
  if (Array.isArray(cidrs) && cidrs.length) options.clusterCidrs = cidrs;
  if (typeof settings.serviceCidr === 'string' && settings.serviceCidr.trim()) {
    options.serviceCidr = settings.serviceCidr.trim();
  }
  if (typeof settings.against === 'string' && settings.against.trim()) {
    const file = path.resolve(workspaceRoot, settings.against.trim());
    try {
      options.against = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new Error(`ippool.against: cannot read ${file}: ${err.message}`);
    }
  }
  return options;
}

async function validateDocument(document) {
  const text = document.getText();
  if (!mentionsIpPool(text)) {
    connection.sendDiagnostics({ uri: document.uri, version: document.version, diagnostics: [] });
    return;
  }
  const name = path.posix.basename(new URL(document.uri).pathname) || document.uri;
  const settings = await settingsFor(document.uri);
  // A newer version may have arrived while the settings were fetched; its own check publishes.
  if (documents.get(document.uri)?.version !== document.version) return;
  let report;
  try {
    report = validator.validate(text, optionsFrom(settings, name));
  } catch (err) {
    // Bad settings (a malformed CIDR): say so once, and still check the manifest on its own.
    if (!reportedSettingsErrors.has(err.message)) {
      reportedSettingsErrors.add(err.message);
      connection.window.showErrorMessage(`ippool settings ignored: ${err.message}`);
    }
    report = validator.validate(text, { name });
  }
  connection.sendDiagnostics({
    uri: document.uri,
    version: document.version,
    diagnostics: toLspDiagnostics(report, DiagnosticSeverity),
  });
}

function validateAll() {
  for (const document of documents.all()) validateDocument(document);
}

documents.onDidChangeContent((change) => validateDocument(change.document));
documents.onDidClose((event) => connection.sendDiagnostics({ uri: event.document.uri, diagnostics: [] }));
connection.onDidChangeConfiguration((change) => {
  pushedSettings = change.settings?.ippool;
  reportedSettingsErrors.clear();
  validateAll();
});

documents.listen(connection);
connection.listen();
