// The playground in headless Chromium: type an invalid pool, see the underline, gutter marker and
// list entry on the right line; fix it and see them go.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { serveStatic } from '../scripts/serve.mjs';
import { launchChromium } from './browser.mjs';
import { artifacts, crate, loadValidator } from './helpers.mjs';
import { EXAMPLE_POOLS } from '../www/src/examples.js';

const www = join(crate, 'www');
const INVALID = [
  'apiVersion: projectcalico.org/v3',
  'kind: IPPool',
  'metadata:',
  '  name: typed-pool',
  'spec:',
  '  cidr: 10.20.0.0/16',
  '  blockSize: 33',
  '  natOutgoing: true',
  '',
].join('\n');
const BAD_LINE = 7;

/** Where the error underlines are: the 1-based line each sits on and the text it covers. */
function underlines(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('.cm-content .cm-lintRange-error')].map((el) => {
      const line = el.closest('.cm-line');
      return { line: [...line.parentElement.children].indexOf(line) + 1, text: el.textContent };
    }),
  );
}

/** The playground in a fresh headless Chromium, loaded with its example; closed when `t` ends. */
async function openPlayground(t) {
  const server = await serveStatic(www);
  const browser = await launchChromium();
  t.after(async () => {
    await browser.close();
    await server.close();
  });
  const page = await browser.context.newPage();
  const pageErrors = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  await page.goto(server.url);
  await page.waitForSelector('body[data-state="ready"]');
  await page.waitForSelector('#diagnostics li');
  return { page, pageErrors };
}

test('the playground underlines an invalid blockSize and clears it when fixed', async (t) => {
  assert.ok(existsSync(join(www, 'dist', 'main.js')), 'www/dist is built (validator-wasm/build)');
  mkdirSync(artifacts, { recursive: true });
  const expected = loadValidator()
    .validate(INVALID, { name: 'playground.yaml' })
    .documents[0].diagnostics.find((d) => d.path === 'spec.blockSize' && d.severity === 'error');
  assert.ok(expected, 'the wasm build reports blockSize 33');

  const { page, pageErrors } = await openPlayground(t);

  // Replace the example with the invalid pool, as a user would.
  await page.click('.cm-content');
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(INVALID);

  await page.waitForSelector('.cm-content .cm-lintRange-error');
  assert.deepEqual(await underlines(page), [{ line: BAD_LINE, text: '33' }]);
  assert.equal(await page.locator('.cm-gutter-lint .cm-lint-marker-error').count(), 1, 'one gutter marker');
  const item = page.locator(`#diagnostics li.error[data-code="${expected.code}"]`);
  await item.waitFor();
  assert.equal(await item.getAttribute('data-line'), String(BAD_LINE));
  assert.ok((await item.textContent()).includes(expected.message));
  assert.equal(await item.locator('a.code').getAttribute('href'), `rules.html#${expected.code}`);
  await page.screenshot({ path: join(artifacts, 'playground-invalid.png'), fullPage: true });

  // Fix it by typing: end of line 7, delete "33", type "26".
  await page.locator('.cm-content .cm-line').nth(BAD_LINE - 1).click();
  await page.keyboard.press('End');
  await page.keyboard.press('Backspace');
  await page.keyboard.press('Backspace');
  await page.keyboard.type('26');
  await page.waitForFunction(() => !document.querySelector('.cm-content .cm-lintRange-error'));
  await page.waitForFunction(() => !document.querySelector('#diagnostics li.error'));
  assert.equal(await page.locator('.cm-gutter-lint .cm-lint-marker-error').count(), 0);
  assert.equal(
    await page.locator('.cm-content .cm-line').nth(BAD_LINE - 1).textContent(),
    '  blockSize: 26',
  );
  await page.screenshot({ path: join(artifacts, 'playground-fixed.png'), fullPage: true });

  // Cluster context from the side form: a refused CIDR is shown, a valid one is applied.
  await page.fill('#cluster-cidrs', '10.0.0.1/8');
  await page.waitForSelector('#context-error:not([hidden])');
  assert.match(await page.textContent('#context-error'), /clusterCidrs\[0\].*10\.0\.0\.1\/8/);
  await page.fill('#cluster-cidrs', '192.168.0.0/16');
  await page.waitForSelector('#diagnostics li.error[data-code="IPP050"]');
  assert.equal(await page.isHidden('#context-error'), true);
  assert.deepEqual(await underlines(page), [{ line: 6, text: '10.20.0.0/16' }]);
  assert.deepEqual(pageErrors, []);
});

test('the rules page lists every rule with an anchor and its RULES.md text', async (t) => {
  const server = await serveStatic(www);
  const browser = await launchChromium();
  t.after(async () => {
    await browser.close();
    await server.close();
  });
  const page = await browser.context.newPage();
  const codes = loadValidator().rules().map((r) => r.code);
  await page.goto(`${server.url}rules.html#${codes.at(-1)}`);
  await page.waitForSelector('body[data-state="ready"]');
  const rows = await page
    .locator('#rules tbody tr')
    .evaluateAll((trs) => trs.map((tr) => ({ id: tr.id, what: tr.cells[3].textContent.trim() })));
  assert.deepEqual(rows.map((r) => r.id), codes);
  const undocumented = rows.filter((r) => !r.what).map((r) => r.id);
  assert.deepEqual(undocumented, [], 'codes without a row in ippool-rules/RULES.md');
  assert.match(rows.find((r) => r.id === 'IPP022').what, /blockSize.*20.*32/);
});

const AGAINST = [
  'apiVersion: crd.projectcalico.org/v1',
  'kind: IPPool',
  'metadata: {name: default-ipv4-ippool}',
  'spec: {cidr: 192.168.0.0/16, blockSize: 26}',
  '---',
  'apiVersion: crd.projectcalico.org/v1',
  'kind: IPAMBlock',
  'metadata: {name: 192-168-4-0-26}',
  'spec: {cidr: 192.168.4.0/26, affinity: "host:node-a", allocations: [0, null], unallocated: [1], attributes: [{handle_id: h}]}',
  '---',
  'apiVersion: crd.projectcalico.org/v1',
  'kind: IPAMBlock',
  'metadata: {name: 172-16-0-0-26}',
  'spec: {cidr: 172.16.0.0/26, affinity: "host:node-b", allocations: [], unallocated: [], attributes: []}',
  '',
].join('\n');

test('the playground maps the pools among the pasted ones and folds what was not checked', async (t) => {
  mkdirSync(artifacts, { recursive: true });
  const { page, pageErrors } = await openPlayground(t);

  // Without context every skipped rule is one folded line, after the findings.
  const skipped = await loadValidator()
    .validate(EXAMPLE_POOLS, { name: 'playground.yaml' })
    .documents.flatMap((d) => d.diagnostics)
    .filter((d) => d.code === 'IPP005').length;
  assert.ok(skipped > 1, 'the example leaves several rules unchecked');
  assert.equal(await page.locator('#diagnostics > li[data-code="IPP005"]').count(), 1);
  assert.match(await page.textContent('#diagnostics li.skipped summary'), new RegExp(`^${skipped} check\\(s\\) not run`));
  assert.equal(await page.locator('#diagnostics li.skipped details li').count(), skipped);
  assert.equal(await page.locator('#diagnostics > li').last().getAttribute('data-code'), 'IPP005');

  // The example's two pools are proposed; nothing else is known yet.
  await page.waitForSelector('#address-map svg.address-map');
  const pools = () => page.locator('#address-map g.pool').evaluateAll((gs) => gs.map((g) => [g.dataset.pool, g.classList.contains('proposed')]));
  assert.deepEqual(await pools(), [['default-ipv4-ippool', true], ['new-pool', true]]);

  // Pasted pools and blocks: the editor's pool of the same name stands for the pasted one, its
  // block is drawn by node and use, and the block outside every pool is marked.
  await page.fill('#cluster-cidrs', '10.0.0.0/8');
  await page.fill('#against', AGAINST);
  await page.waitForFunction(() => document.querySelectorAll('#address-map g.cell.block').length === 2);
  const blocks = await page
    .locator('#address-map g.cell.block')
    .evaluateAll((gs) => gs.map((g) => [g.dataset.cidr, g.dataset.node, g.dataset.inUse, g.classList.contains('leftover')]));
  assert.deepEqual(blocks, [
    ['192.168.4.0/26', 'node-a', '1', false],
    ['172.16.0.0/26', 'node-b', '0', true],
  ]);
  assert.deepEqual(
    await page.locator('#address-map g.space').evaluateAll((gs) => gs.map((g) => g.dataset.cidr)),
    ['10.0.0.0/8', '128.0.0.0/1'],
  );
  const box = await page.locator('#address-map svg').boundingBox();
  assert.ok(box.width > 300 && box.height > 200, `the map is drawn (${box.width}x${box.height})`);
  await page.locator('.map-pane').screenshot({ path: join(artifacts, 'playground-map.png') });
  assert.deepEqual(pageErrors, []);
});
