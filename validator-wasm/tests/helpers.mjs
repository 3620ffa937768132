// Shared by the Node tests: where things are, the Node build of the validator, the corpus.
import { createRequire } from 'node:module';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const here = dirname(fileURLToPath(import.meta.url));
export const crate = join(here, '..');
export const pkg = join(crate, 'pkg');
export const corpusDir = join(here, 'corpus');
export const artifacts = join(crate, 'test-artifacts');
export const require = createRequire(import.meta.url);

export function loadValidator() {
  const entry = join(pkg, 'node', 'validator_wasm.js');
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run validator-wasm/build first`);
  return require(entry);
}

/**
 * The corpus: every tests/corpus/NAME.yaml (or .json) that is not a context file, with
 * - `expect`: the codes its first-line comment `# expect: IPP001 IPP002` promises (JSON files: none),
 * - `options`: tests/corpus/NAME.options.json, where `against`/`old` name files next to it.
 */
export function corpus() {
  const contextFile = /\.(against|old)\.ya?ml$/;
  const files = readdirSync(corpusDir)
    .filter((f) => /\.(ya?ml|json)$/.test(f) && !f.endsWith('.options.json') && !contextFile.test(f))
    .sort()
    .map((file) => {
      const text = readFileSync(join(corpusDir, file), 'utf8');
      const expectLine = text.match(/^# expect:(.*)$/m);
      const expect = expectLine ? expectLine[1].trim().split(/\s+/).filter(Boolean) : [];
      const optionsFile = join(corpusDir, file.replace(/\.(ya?ml|json)$/, '.options.json'));
      const fileOptions = existsSync(optionsFile) ? JSON.parse(readFileSync(optionsFile, 'utf8')) : {};
      return { file, text, expect, fileOptions };
    });
  return [...files, ...generatedCorpus()];
}

/**
 * Cases too large to keep as files, built here. The native CLI reads them from stdin (`-f -`), so
 * their source name is `-`.
 */
function generatedCorpus() {
  // Annotations of 256 KiB + 1 byte in total (keys plus values), one over the API server's limit.
  const key = 'example.com/blob';
  const value = 'x'.repeat(256 * 1024 + 1 - key.length);
  const text = [
    '# expect: IPP044',
    'apiVersion: projectcalico.org/v3',
    'kind: IPPool',
    'metadata:',
    '  name: heavy-annotations',
    '  annotations:',
    `    ${key}: ${value}`,
    'spec:',
    '  cidr: 10.44.0.0/16',
    '',
  ].join('\n');
  return [{ file: '-', text, expect: ['IPP044'], fileOptions: {}, stdin: true }];
}

/** validate() options for a corpus entry: the file's name, and `against`/`old` read from their files. */
export function wasmOptions(entry) {
  const options = { name: entry.file, ...entry.fileOptions };
  for (const key of ['against', 'old']) {
    if (options[key]) options[key] = readFileSync(join(corpusDir, options[key]), 'utf8');
  }
  return options;
}

/** The same options as command-line flags of `kubectl-ippool validate`. */
export function cliFlags(entry) {
  const o = entry.fileOptions;
  const flags = ['-f', entry.file];
  for (const cidr of o.clusterCidrs ?? []) flags.push('--cluster-cidr', cidr);
  if (o.serviceCidr) flags.push('--service-cidr', o.serviceCidr);
  if (o.against) flags.push('--against', o.against);
  if (o.operation) flags.push('--operation', o.operation);
  if (o.old) flags.push('--old', o.old);
  return flags;
}

export function codesOf(report) {
  return new Set(report.documents.flatMap((d) => d.diagnostics.map((x) => x.code)));
}

/** The text a diagnostic's span covers, cutting by UTF-16 units as the report counts them. */
export function spanText(text, d) {
  const lines = text.split('\n');
  if (d.line !== d.endLine) return null;
  return lines[d.line - 1].slice(d.column - 1, d.endColumn - 1);
}
