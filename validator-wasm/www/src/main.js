// The playground: a CodeMirror editor whose lint source is the validator compiled to WebAssembly.
import init, { addressMap, validate, version } from '../../pkg/web/validator_wasm.js';
import { EditorView, basicSetup } from 'codemirror';
import { yaml } from '@codemirror/lang-yaml';
import { linter, lintGutter } from '@codemirror/lint';
import { StateEffect } from '@codemirror/state';
import { EXAMPLE_POOLS } from './examples.js';
import { flatten, rangeOf, ruleLink } from './diagnostics.js';

const $ = (id) => document.getElementById(id);
const form = $('context');

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.append(...children.filter((c) => c != null));
  return node;
}

/** The validate() options from the side form; empty fields are left out. */
function contextOptions() {
  const options = { name: 'playground.yaml' };
  const cidrs = $('cluster-cidrs').value.split(/[\s,]+/).filter(Boolean);
  if (cidrs.length) options.clusterCidrs = cidrs;
  const service = $('service-cidr').value.trim();
  if (service) options.serviceCidr = service;
  if ($('against').value.trim()) options.against = $('against').value;
  options.operation = $('operation').value;
  if (options.operation === 'update') options.old = $('old').value;
  return options;
}

/**
 * Validates with the form's context. A context the validator refuses (a malformed CIDR, an update
 * without the current pool) is shown above the list, and the manifest is still checked without it.
 */
function runValidator(text) {
  const banner = $('context-error');
  try {
    const report = validate(text, contextOptions());
    banner.hidden = true;
    return report;
  } catch (err) {
    banner.textContent = `Cluster context not used: ${err.message}`;
    banner.hidden = false;
    return validate(text, { name: 'playground.yaml' });
  }
}

/** The address-space map of the manifest's pools among the context's; drawn without a refused context. */
function renderMap(text) {
  let svg;
  try {
    svg = addressMap(text, contextOptions());
  } catch {
    svg = addressMap(text, { name: 'playground.yaml' });
  }
  $('address-map').innerHTML = svg;
}

function renderMessage(d) {
  return () =>
    el(
      'div',
      {},
      el('a', { class: 'code', href: ruleLink(d.code), target: '_blank' }, d.code),
      ' ',
      d.message,
      d.hint ? el('div', { class: 'hint' }, `hint: ${d.hint}`) : null,
    );
}

const RANK = { error: 0, warning: 1, info: 2 };
const SKIPPED = 'IPP005';

/** Errors first, then warnings, then what was not checked; by position within each. */
function byImportance(a, b) {
  return RANK[a.severity] - RANK[b.severity] || a.line - b.line || a.column - b.column;
}

function renderList(view, report, items) {
  const list = $('diagnostics');
  list.replaceChildren();
  $('summary').textContent = `— ${report.errors} error(s), ${report.warnings} warning(s)`;
  if (!items.length) {
    list.append(el('li', { class: 'clean' }, 'No findings.'));
    return;
  }
  // Rules skipped for want of context (IPP005) fold into one line under the verdict.
  const skipped = items.filter((d) => d.code === SKIPPED);
  for (const d of items.filter((d) => d.code !== SKIPPED).sort(byImportance)) {
    const item = el(
      'li',
      { class: d.severity, 'data-code': d.code, 'data-line': String(d.line) },
      el('div', { class: 'where' }, `${d.line}:${d.column} ${d.severity} · ${d.path || '(document)'}`),
      el('a', { class: 'code', href: ruleLink(d.code), target: '_blank' }, d.code),
      ' ',
      d.message,
      d.hint ? el('div', { class: 'hint' }, `hint: ${d.hint}`) : null,
    );
    item.addEventListener('click', (event) => {
      if (event.target.closest('a')) return;
      const { from } = rangeOf(view.state.doc, d);
      view.dispatch({ selection: { anchor: from }, scrollIntoView: true });
      view.focus();
    });
    list.append(item);
  }
  if (skipped.length) {
    list.append(
      el(
        'li',
        { class: 'info skipped', 'data-code': SKIPPED },
        el(
          'details',
          {},
          el('summary', {}, `${skipped.length} check(s) not run for want of context: fill in the form to run them`),
          el('ul', {}, ...skipped.map((d) => el('li', {}, d.message))),
        ),
      ),
    );
  }
}

/** Dispatched when the side form changes: the manifest is unchanged but must be checked again. */
const contextChanged = StateEffect.define();

const validatorLint = linter(
  (view) => {
    const doc = view.state.doc;
    const text = doc.toString();
    const report = runValidator(text);
    const items = flatten(report);
    renderList(view, report, items);
    renderMap(text);
    return items.map((d) => ({
      ...rangeOf(doc, d),
      severity: d.severity,
      source: d.code,
      message: d.hint ? `${d.code}: ${d.message} (hint: ${d.hint})` : `${d.code}: ${d.message}`,
      renderMessage: renderMessage(d),
    }));
  },
  {
    delay: 250,
    needsRefresh: (update) => update.transactions.some((tr) => tr.effects.some((e) => e.is(contextChanged))),
  },
);

async function main() {
  await init({ module_or_path: new URL('validator_wasm_bg.wasm', import.meta.url) });
  $('version').textContent = `ippool-validator ${version()} (WebAssembly)`;
  const view = new EditorView({
    doc: EXAMPLE_POOLS,
    extensions: [basicSetup, yaml(), lintGutter(), validatorLint, EditorView.lineWrapping],
    parent: $('editor'),
  });
  const relint = () => view.dispatch({ effects: contextChanged.of(null) });
  form.addEventListener('input', relint);
  $('operation').addEventListener('change', () => {
    $('old-wrap').hidden = $('operation').value !== 'update';
    relint();
  });
  document.body.dataset.state = 'ready';
}

main().catch((err) => {
  document.body.dataset.state = 'failed';
  const banner = $('context-error');
  banner.textContent = `The validator failed to load: ${err.message}`;
  banner.hidden = false;
});
