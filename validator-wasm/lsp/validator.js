'use strict';
// Finds the Node build of the validator: IPPOOL_VALIDATOR_MODULE (a path or package name) when set,
// else the published package `ippool-validator`, else this repository's validator-wasm/pkg/node.
const path = require('node:path');

function loadValidator() {
  const candidates = [
    process.env.IPPOOL_VALIDATOR_MODULE,
    'ippool-validator',
    path.join(__dirname, '..', 'pkg', 'node', 'validator_wasm.js'),
  ].filter(Boolean);
  const failures = [];
  for (const candidate of candidates) {
    try {
      return require(candidate);
    } catch (err) {
      if (err.code !== 'MODULE_NOT_FOUND' || !String(err.message).includes(candidate)) throw err;
      failures.push(candidate);
    }
  }
  throw new Error(
    `ippool-lsp: the validator's WebAssembly build was not found (tried ${failures.join(', ')}); ` +
      'run validator-wasm/build, install the ippool-validator package, or set IPPOOL_VALIDATOR_MODULE',
  );
}

module.exports = { loadValidator };
