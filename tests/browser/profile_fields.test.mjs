// Unit test of the profile's pure helpers (static/js/profile.js): the
// checks that refuse in plain words, the path made from a plain name, and
// how stored values are shown and compared. No browser, no server.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  emailProblem, phoneProblem, cardHintProblem, pathForLabel, typedFromValue, valueFromTyped, isChanged, SECTIONS, PROFILE_PATHS,
} from '../../static/js/profile.js';

const field = (path) => SECTIONS.flatMap((s) => s.fields).find((f) => f.path === path);

test('email, phone and card hints are checked in plain words', () => {
  assert.equal(emailProblem('ana.lima@example.org'), null);
  assert.equal(emailProblem(''), null, 'an empty box means "remove it", not a mistake');
  assert.match(emailProblem('ana.lima@'), /missing the part after the @/);
  assert.match(emailProblem('ana.lima'), /needs your name, an @ and a domain/);
  assert.match(emailProblem('ana lima@example.org'), /no spaces/);
  assert.equal(phoneProblem('+351 912 345 678'), null);
  assert.match(phoneProblem('call me'), /digits/);
  assert.match(phoneProblem('123'), /too short/);
  assert.match(cardHintProblem('4242 4242 4242 4242'), /full card number/);
  assert.equal(cardHintProblem('Visa ending 4242'), null);
});

test('a plain name becomes a path the server accepts, never shown', () => {
  const server = /^[a-z0-9][a-z0-9_-]{0,63}(\.[a-z0-9][a-z0-9_-]{0,63}){1,3}$/;
  for (const [label, path] of [['Shoe size', 'other.shoe_size'], ['Café card №', 'other.cafe_card_no'], ['  Library  card number ', 'other.library_card_number']]) {
    assert.equal(pathForLabel(label), path, label);
    assert.match(path, server);
  }
  assert.equal(pathForLabel('!!!'), null);
  assert.ok(pathForLabel('x'.repeat(200)).length <= 'other.'.length + 64);
  assert.ok(!PROFILE_PATHS.has('other.shoe_size'));
});

test('the address is one record; values of another shape are shown without being rewritten', () => {
  const address = field('addresses.home');
  const typed = { street: ' Rua das Flores 12 ', postal_code: '1200-195', city: 'Lisboa', country: '' };
  assert.deepEqual(valueFromTyped(address, typed), { street: 'Rua das Flores 12', postal_code: '1200-195', city: 'Lisboa' });
  assert.equal(valueFromTyped(address, { street: '', postal_code: '', city: '', country: '' }), undefined, 'all empty: removed');
  const name = field('profile.name');
  // A name kept as parts (keys sorted by the server) reads in order...
  assert.deepEqual(typedFromValue(name, { family: 'Okafor', given: 'Lin' }), { 'profile.name': 'Lin Okafor' });
  // ...and is only rewritten when the person edits it.
  assert.equal(isChanged(name, { 'profile.name': 'Lin Okafor' }, { family: 'Okafor', given: 'Lin' }), false);
  assert.equal(isChanged(name, { 'profile.name': 'Lin O.' }, { family: 'Okafor', given: 'Lin' }), true);
});
