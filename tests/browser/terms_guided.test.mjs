// Browser test of making terms by choosing, on a 390 px phone.
//
// The person publishes a shipped template as it is in two taps, then makes
// narrower terms only by tapping choices (kinds of data, purposes, how long
// brands may keep data, an end date, a number of uses, an extra refusal) and
// publishes them; what brands then read is exactly those choices. No code, no
// hash and no JSON is on the screen outside the Advanced view. A choice
// missing is refused beside it before anything is sent. axe finds no serious
// or critical problem, and nothing is wider than the phone.
//
// Screenshots go to artifacts/screenshots/terms-guided-*.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  setUpBrowserTests, startServer, stopServer, freshDataDir, watchPage, newContext, expectText,
  assertNoHorizontalOverflow, checkAccessibility, setUpVault, openFromNav, factValue, fetchJson,
} from './helpers.mjs';

const { step, shot } = setUpBrowserTests({ screenshotPrefix: 'terms-guided' });

const PASSPHRASE = 'amber tulip rowing forty';
const CODES = /\b(pd|dpv|p7012|odrl):|SD-BASE|PDC-INTENT|sha256|IEEE/;

/** The screen's text outside the folded Advanced view. */
async function visibleText(page) {
  return page.evaluate(() => {
    const screen = document.querySelector('#screen');
    if (!screen) return '';
    const copy = /** @type {HTMLElement} */ (screen.cloneNode(true));
    for (const advanced of copy.querySelectorAll('.terms-advanced')) advanced.remove();
    return copy.textContent || '';
  });
}

test('390 px: publish a template in two taps, then terms made only of choices', { timeout: 120_000 }, async (t) => {
  const server = await startServer(freshDataDir());
  const { context, violations } = await newContext({ width: 390, height: 844 });
  const page = await context.newPage();
  const watch = watchPage(page);
  const current = page.locator('.terms-current');

  try {
    await step(t, page, 'the terms screen speaks in words: no code, no hash, no JSON', async () => {
      await page.goto(server.url);
      await setUpVault(page, PASSPHRASE);
      await openFromNav(page, 'My terms', 'My terms');
      await expectText(factValue(current, 'Version'), /^1$/);
      await expectText(factValue(current, 'Starting point'), 'Service delivery only');
      assert.match((await factValue(current, 'Version code').innerText()).trim(), /^[0-9a-f]{8}$/);
      await page.locator('.guided-template').first().waitFor();
      assert.equal(await page.locator('.guided-template').count(), 3, 'the three shipped templates are offered');
      assert.doesNotMatch(await visibleText(page), CODES);
      assert.equal(await page.locator('.terms-advanced').evaluate((d) => /** @type {HTMLDetailsElement} */ (d).open), false, 'the JSON is folded away');
      await checkAccessibility(page, 'the terms screen');
      await assertNoHorizontalOverflow(page, 'the terms screen');
      await shot(page, '01-terms');
    });

    await step(t, page, 'a template is published as it is in two taps', async () => {
      const card = page.locator('.guided-template[data-template="pdc-intent"]');
      await card.getByRole('button', { name: 'Publish as it is…' }).click();
      const confirm = card.locator('.confirm', { hasText: 'Publish these terms as version 2?' });
      await confirm.waitFor();
      assert.ok(await confirm.locator('ul.summary li').count() >= 3, 'what is published is shown in words');
      assert.doesNotMatch(await confirm.innerText(), CODES);
      await shot(page, '02-template-confirm');
      await confirm.getByRole('button', { name: 'Publish version 2' }).click();
      await expectText(page.locator('.guided-outcome .message-success'), 'Published version 2');
      await expectText(factValue(current, 'Version'), /^2$/);
      await expectText(factValue(current, 'Starting point'), 'Intentcasting');
      const terms = await fetchJson(`${server.url}/brand/v1/terms`);
      assert.equal(terms.data.basis, 'PDC-INTENT', 'brands read the template just published');
      assert.equal(terms.data.hash, await factValue(current, 'Version code').locator('[data-hash]').getAttribute('data-hash'));
    });

    await step(t, page, 'a missing choice is refused beside it, before anything is sent', async () => {
      const card = page.locator('.guided-template[data-template="sd-base"]');
      await card.getByRole('button', { name: 'Choose what brands may do' }).click();
      const form = page.locator('.guided-form');
      await form.waitFor();
      const kinds = form.locator('fieldset', { hasText: 'What brands may see' });
      for (const box of await kinds.getByRole('checkbox').all()) await box.uncheck();
      let built = 0;
      page.on('request', (request) => { if (request.url().includes('/build')) built += 1; });
      await form.getByRole('button', { name: 'See these terms in plain words' }).click();
      await expectText(kinds.locator('.field-error'), 'Tick at least one kind of data.');
      assert.equal(built, 0, 'nothing was sent');
      await checkAccessibility(page, 'the choices with a refusal');
      await shot(page, '03-choices-refused');
    });

    await step(t, page, 'terms made only by tapping choices are shown in words, then published', async () => {
      const form = page.locator('.guided-form');
      const kinds = form.locator('fieldset', { hasText: 'What brands may see' });
      await kinds.getByLabel('Name', { exact: true }).check();
      await kinds.getByLabel('Postal address', { exact: true }).check();
      const purposes = form.locator('fieldset', { hasText: 'What they may use it for' });
      for (const box of await purposes.getByRole('checkbox').all()) await box.uncheck();
      await purposes.getByLabel('Delivery of goods', { exact: true }).check();
      await form.getByLabel('1 week', { exact: true }).check();
      await form.getByLabel('At most this many uses (optional)', { exact: true }).fill('3');
      await form.getByLabel('No longer allowed from (optional)', { exact: true }).fill('2031-01-01');
      await form.getByLabel('Do not use my data to improve or optimise your service', { exact: true }).check();
      await form.getByRole('button', { name: 'See these terms in plain words' }).click();
      const result = page.locator('.guided-result');
      await expectText(result.locator('.message-success'), 'These choices make terms you can publish.');
      const lines = await result.locator('ul.summary li').allInnerTexts();
      assert.ok(lines.includes('Brands may read your name and postal address for delivery of goods, before 2031-01-01, at most 3 times.'), lines.join('\n'));
      assert.ok(lines.includes('Brands may not use any of your data for service optimisation or service improvement.'), lines.join('\n'));
      assert.ok(lines.includes('Brands must delete what they receive within 7 days of receiving it.'), lines.join('\n'));
      assert.doesNotMatch(await visibleText(page), CODES);
      await assertNoHorizontalOverflow(page, 'the choices');
      await checkAccessibility(page, 'the built terms');
      await shot(page, '04-choices-built');

      await result.getByRole('button', { name: 'Publish these terms…' }).click();
      const confirm = result.locator('.confirm', { hasText: 'Publish these terms as version 3?' });
      await confirm.getByRole('button', { name: 'Publish version 3' }).click();
      await expectText(page.locator('.guided-outcome .message-success'), 'Published version 3');
      await expectText(factValue(current, 'Version'), /^3$/);
      await expectText(current.locator('ul.summary'), 'Brands may read your name and postal address for delivery of goods');
      assert.equal(await page.locator('.guided-form').count(), 0, 'the choices close once published');
      await shot(page, '05-published');
    });

    await step(t, page, 'brands read exactly those choices', async () => {
      const terms = await fetchJson(`${server.url}/brand/v1/terms`);
      assert.equal(terms.status, 200);
      assert.equal(terms.data.version, 3);
      assert.equal(terms.data.basis, 'SD-BASE');
      const read = terms.data.terms.permission.find((p) => p.action === 'read');
      assert.deepEqual(read.target, ['pd:Name', 'pd:PhysicalAddress']);
      assert.equal(terms.data.terms.permission.length, 1, 'the update permission went with the data it named');
    });

    await step(t, page, 'the JSON is still there under Advanced', async () => {
      await page.locator('.terms-advanced > summary').click();
      const editor = page.getByLabel('Terms document (JSON)', { exact: true });
      const doc = JSON.parse(await editor.inputValue());
      assert.equal(doc.basis, 'SD-BASE');
      await checkAccessibility(page, 'the Advanced view');
    });

    watch.assertClean('on the guided terms editor');
    assert.deepEqual(violations, [], 'no Content Security Policy violations on the terms screen');
  } finally {
    await context.close().catch(() => {});
    await stopServer(server).catch(() => {});
  }
});
