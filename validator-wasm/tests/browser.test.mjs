// The playground in headless Chromium: type an invalid pool, see the underline, gutter marker and
// list entry on the right line; fix it and see them go.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { serveStatic } from '../scripts/serve.mjs';
import { launchChromium } from './browser.mjs';
import { artifacts, crate, loadValidator } from './helpers.mjs';

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

test('the playground underlines an invalid blockSize and clears it when fixed', async (t) => {
  assert.ok(existsSync(join(www, 'dist', 'main.js')), 'www/dist is built (validator-wasm/build)');
  mkdirSync(artifacts, { recursive: true });
  const expected = loadValidator()
    .validate(INVALID, { name: 'playground.yaml' })
    .documents[0].diagnostics.find((d) => d.path === 'spec.blockSize' && d.severity === 'error');
  assert.ok(expected, 'the wasm build reports blockSize 33');

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
