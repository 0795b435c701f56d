// Unit test of the invitation's reachability warning (static/js/invitation.js):
// a loopback or home-network registration address is flagged in plain words
// with the fix; a public one is not. Pure: no browser, no server.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reachabilityProblem } from '../../static/js/invitation.js';

test('loopback and home-network registration addresses are flagged, public ones are not', () => {
  for (const address of ['http://127.0.0.1:8080/oauth/register', 'http://localhost:8080/oauth/register', 'http://[::1]:8080/oauth/register']) {
    const problem = reachabilityProblem(address);
    assert.equal(problem && problem.kind, 'loopback', address);
    assert.match(problem.text, /--public-url https:\/\/vault\.example\.org/);
  }
  for (const address of ['http://192.168.1.20:8080/oauth/register', 'http://10.0.0.5/oauth/register', 'http://172.20.0.2/oauth/register', 'http://homeserver.lan:8080/oauth/register', 'http://vault.local/oauth/register', 'http://nas:8080/oauth/register']) {
    const problem = reachabilityProblem(address);
    assert.equal(problem && problem.kind, 'private', address);
  }
  for (const address of ['https://vault.example.org/oauth/register', 'http://172.32.0.1/oauth/register', 'https://203.0.113.7/oauth/register', 'not a url']) {
    assert.equal(reachabilityProblem(address), null, address);
  }
});
