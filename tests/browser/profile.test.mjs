// Browser test of the profile on "My data", on a 390 px phone.
//
// The person fills in their name, email address, phone number and home
// address as on any account page (no paths, no JSON), a half-typed email
// address is refused beside the field in plain words before anything is
// sent, and something that fits no section is added by its name. What the
// vault stored is then read back through the owner's API: each field at its
// well-known path, with the kind of data the vault gives it. axe finds no
// serious or critical problem, and nothing is wider than the phone.
//
// Screenshots go to artifacts/screenshots/profile-*.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  setUpBrowserTests, startServer, stopServer, freshDataDir, watchPage, newContext,
  expectText, assertNoHorizontalOverflow, checkAccessibility, setUpVault, ownerLogin, ownerApi,
} from './helpers.mjs';

const { step, shot } = setUpBrowserTests({ screenshotPrefix: 'profile' });

const PASSPHRASE = 'copper meadow violin eighty';

test('390 px: fill the profile, a bad email refused in plain words, add something else', { timeout: 120_000 }, async (t) => {
  const server = await startServer(freshDataDir());
  const { context, violations } = await newContext({ width: 390, height: 844 });
  const page = await context.newPage();
  const watch = watchPage(page);
  const contact = page.locator('form[data-section="contact"]');
  const about = page.locator('form[data-section="about"]');
  const address = page.locator('form[data-section="address"]');

  try {
    await step(t, page, 'a new vault shows the profile sections, and no path or JSON anywhere', async () => {
      await page.goto(server.url);
      await setUpVault(page, PASSPHRASE);
      const headings = await page.locator('.profile-section h2').allInnerTexts();
      assert.deepEqual(headings.map((h) => h.trim()), ['About you', 'Contact', 'Address', 'Preferences', 'Payment hints']);
      const text = await page.locator('#screen').innerText();
      assert.doesNotMatch(text, /\bPath\b|JSON|contact\.email|dpv:|pd:/, 'nothing technical is shown');
      // The right keyboard and autofill on a phone.
      const email = contact.getByLabel('Email address', { exact: true });
      assert.equal(await email.getAttribute('type'), 'email');
      assert.equal(await email.getAttribute('autocomplete'), 'email');
      assert.equal(await contact.getByLabel('Phone number', { exact: true }).getAttribute('type'), 'tel');
      assert.equal(await about.getByLabel('Birthday', { exact: true }).getAttribute('type'), 'date');
      assert.equal(await about.getByLabel('Name', { exact: true }).getAttribute('autocomplete'), 'name');
      assert.equal(await address.getByLabel('Postcode', { exact: true }).getAttribute('autocomplete'), 'postal-code');
      await checkAccessibility(page, 'the empty profile');
      await assertNoHorizontalOverflow(page, 'the empty profile');
      await shot(page, '01-empty');
    });

    await step(t, page, 'a name with a capital letter is simply saved', async () => {
      await about.getByLabel('Name', { exact: true }).fill('Ana Lima');
      await about.getByLabel('Birthday', { exact: true }).fill('1990-04-12');
      await about.getByRole('button', { name: 'Save about you' }).click();
      await expectText(about.locator('.profile-status .message-success'), 'Saved the details about you.');
    });

    await step(t, page, 'a half-typed email address is refused beside the field, and nothing is sent', async () => {
      let sent = 0;
      page.on('request', (request) => {
        if (request.url().includes('/api/v1/records/contact.')) sent += 1;
      });
      await contact.getByLabel('Email address', { exact: true }).fill('ana.lima@');
      await contact.getByLabel('Phone number', { exact: true }).fill('+351 912 345 678');
      await contact.getByRole('button', { name: 'Save contact' }).click();
      const error = contact.locator('.field-error:visible');
      await expectText(error, 'This email address is missing the part after the @');
      assert.equal(await contact.getByLabel('Email address', { exact: true }).getAttribute('aria-invalid'), 'true');
      assert.equal(sent, 0, 'nothing was sent while the email address is incomplete');
      await checkAccessibility(page, 'the refused email address');
      await shot(page, '02-bad-email');
    });

    await step(t, page, 'corrected, the contact details and the address are saved', async () => {
      await contact.getByLabel('Email address', { exact: true }).fill('ana.lima@example.org');
      await contact.getByRole('button', { name: 'Save contact' }).click();
      await expectText(contact.locator('.profile-status .message-success'), 'Saved your contact details.');
      assert.equal(await contact.locator('.field-error:visible').count(), 0, 'the refusal is gone');
      await address.getByLabel('Street and number', { exact: true }).fill('Rua das Flores 12');
      await address.getByLabel('Postcode', { exact: true }).fill('1200-195');
      await address.getByLabel('Town or city', { exact: true }).fill('Lisboa');
      await address.getByLabel('Country', { exact: true }).fill('Portugal');
      await address.getByRole('button', { name: 'Save address' }).click();
      await expectText(address.locator('.profile-status .message-success'), 'Saved your address.');
      await shot(page, '03-saved');
    });

    await step(t, page, 'add something else by its name', async () => {
      await page.getByRole('button', { name: 'Add something else' }).click();
      await page.getByLabel('What is it?', { exact: true }).fill('Shoe size');
      await page.getByLabel('Value', { exact: true }).fill('39 EU');
      await shot(page, '04-add-something-else');
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      await expectText(page.locator('.notice-slot'), 'Saved Shoe size.');
      const item = page.locator('li.record', { hasText: 'Shoe size' });
      await expectText(item.locator('.value'), '39 EU');
      assert.doesNotMatch(await page.locator('#screen').innerText(), /other\.shoe_size/, 'the path is never shown');
      await checkAccessibility(page, 'the profile with data');
      await assertNoHorizontalOverflow(page, 'the profile with data');
    });

    await step(t, page, 'after a reload everything is shown again', async () => {
      await page.reload();
      await contact.getByLabel('Email address', { exact: true }).waitFor();
      assert.equal(await contact.getByLabel('Email address', { exact: true }).inputValue(), 'ana.lima@example.org');
      assert.equal(await address.getByLabel('Town or city', { exact: true }).inputValue(), 'Lisboa');
      assert.equal(await about.getByLabel('Name', { exact: true }).inputValue(), 'Ana Lima');
      await shot(page, '05-after-reload');
    });

    await step(t, page, 'the vault stored each field at its well-known path, with its kind of data', async () => {
      const owner = await ownerLogin(server.url, PASSPHRASE);
      const list = await ownerApi(server.url, owner, 'GET', '/api/v1/records?limit=100');
      assert.equal(list.status, 200);
      const byPath = Object.fromEntries(list.data.records.map((r) => [r.path, r]));
      assert.equal(byPath['profile.name'].value, 'Ana Lima');
      assert.equal(byPath['profile.name'].category, 'pd:Name');
      assert.equal(byPath['profile.birthdate'].category, 'pd:BirthDate');
      assert.equal(byPath['contact.email'].value, 'ana.lima@example.org');
      assert.equal(byPath['contact.email'].category, 'pd:EmailAddress');
      assert.equal(byPath['contact.phone'].category, 'pd:TelephoneNumber');
      assert.deepEqual(byPath['addresses.home'].value, { street: 'Rua das Flores 12', postal_code: '1200-195', city: 'Lisboa', country: 'Portugal' });
      assert.equal(byPath['addresses.home'].category, 'pd:PhysicalAddress');
      assert.equal(byPath['other.shoe_size'].value, '39 EU');
      // The server refuses a half-typed email address too, whoever sends it.
      const bad = await ownerApi(server.url, owner, 'PUT', '/api/v1/records/contact.email', { value: 'ana.lima@' });
      assert.equal(bad.status, 422, JSON.stringify(bad.data));
      assert.equal(bad.data.error, 'invalid_value');
    });

    await step(t, page, 'emptying a field and saving removes it', async () => {
      await contact.getByLabel('Phone number', { exact: true }).fill('');
      await contact.getByRole('button', { name: 'Save contact' }).click();
      await expectText(contact.locator('.profile-status .message-success'), 'Saved your contact details.');
      const owner = await ownerLogin(server.url, PASSPHRASE);
      const gone = await ownerApi(server.url, owner, 'GET', '/api/v1/records/contact.phone');
      assert.equal(gone.status, 404);
    });

    watch.assertClean('on the profile');
    assert.deepEqual(violations, [], 'no Content Security Policy violations on the profile');
  } finally {
    await context.close().catch(() => {});
    await stopServer(server).catch(() => {});
  }
});
