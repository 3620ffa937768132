// The rules page: the catalogue as the WebAssembly module reports it, one row (and anchor) per code,
// joined with the explanation and fix that the build took from ippool-rules/RULES.md.
import init, { rules, version } from '../../pkg/web/validator_wasm.js';

function cell(text, cls) {
  const td = document.createElement('td');
  if (cls) td.className = cls;
  td.textContent = text;
  return td;
}

/** RULES.md's cells, rendered to HTML at build time from the repository's own file. */
function htmlCell(html) {
  const td = document.createElement('td');
  td.innerHTML = html ?? '';
  return td;
}

async function main() {
  const [docs] = await Promise.all([
    fetch(new URL('rules-doc.json', import.meta.url)).then((r) => r.json()),
    init({ module_or_path: new URL('validator_wasm_bg.wasm', import.meta.url) }),
  ]);
  document.getElementById('version').textContent = `ippool-validator ${version()} (WebAssembly)`;
  const body = document.querySelector('#rules tbody');
  for (const rule of rules()) {
    const doc = docs[rule.code] ?? {};
    const row = document.createElement('tr');
    row.id = rule.code;
    // :target does not apply to rows created after the navigation, so mark the linked one by hand.
    if (decodeURIComponent(location.hash.slice(1)) === rule.code) row.classList.add('target');
    const code = cell('');
    const link = document.createElement('a');
    link.href = `#${rule.code}`;
    link.textContent = rule.code;
    code.append(link);
    const reason = doc.calicoReason ? htmlCell(doc.calicoReason) : cell(rule.calicoReason ?? '');
    row.append(code, cell(rule.severity, rule.severity), cell(rule.summary), htmlCell(doc.what), reason, htmlCell(doc.fix));
    body.append(row);
  }
  // The anchor did not exist when the browser first looked for it.
  if (location.hash) document.getElementById(decodeURIComponent(location.hash.slice(1)))?.scrollIntoView();
  document.body.dataset.state = 'ready';
}

main().catch((err) => {
  document.body.dataset.state = 'failed';
  document.querySelector('header p').textContent = `The validator failed to load: ${err.message}`;
});
