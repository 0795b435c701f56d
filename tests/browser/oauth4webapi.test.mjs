// @ts-check
// Interoperability with an unmodified third-party OAuth client: oauth4webapi (npm) drives a
// brand through the vault the way a brand's own server would, against the real binary:
// discovery, a pushed authorization request (RFC 9126) with PKCE and RFC 9396
// authorization_details, the person's approval (the consent API the consent page calls), the
// authorization response checked with its iss (RFC 9207), the code exchanged with a DPoP
// proof (RFC 9449), and the brand API called with the DPoP-bound token.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as oauth from 'oauth4webapi';
import { startServer, stopServer, fetchJson, ownerApi, registerBrand, acceptTerms, DATA_ACCESS } from './helpers.mjs';

const PASSPHRASE = 'a long and memorable passphrase for interop';
const REDIRECT_URI = 'http://127.0.0.1:9/callback';
const dir = mkdtempSync(path.join(tmpdir(), 'vrm-vault-oauth4webapi-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('oauth4webapi: PAR, PKCE and DPoP code flow, then the brand API with the bound token', { timeout: 120_000 }, async () => {
  const server = await startServer(path.join(dir, 'data'));
  try {
    const base = server.url;
    const setup = await fetchJson(`${base}/api/v1/setup`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ passphrase: PASSPHRASE }),
    });
    assert.equal(setup.status, 201, JSON.stringify(setup.data));
    const owner = setup.data.token;
    const put = await ownerApi(base, owner, 'PUT', '/api/v1/records/contact.email', { value: 'ada@example.org' });
    assert.ok(put.status < 300, JSON.stringify(put.data));
    const invitation = await ownerApi(base, owner, 'POST', '/api/v1/invitations', { note: 'oauth4webapi' });
    assert.equal(invitation.status, 201, JSON.stringify(invitation.data));
    const registered = await registerBrand(base, invitation.data.initial_access_token, {
      client_name: 'oauth4webapi brand',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: [REDIRECT_URI],
      require_pushed_authorization_requests: true,
      dpop_bound_access_tokens: true,
    });
    assert.equal(registered.status, 201, JSON.stringify(registered.data));
    const { client_id, client_secret } = registered.data;
    await acceptTerms(base, { client_id, client_secret });

    // The library's own discovery and checks, untouched (plain http on loopback allowed).
    const issuer = new URL(base);
    const insecure = { [oauth.allowInsecureRequests]: true };
    const as = await oauth.processDiscoveryResponse(
      issuer,
      await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }),
    );
    assert.equal(as.pushed_authorization_request_endpoint, `${base}/oauth/par`);
    /** @type {oauth.Client} */
    const client = { client_id };
    const clientAuth = oauth.ClientSecretBasic(client_secret);
    const dpopKeys = await oauth.generateKeyPair('ES256');
    const DPoP = oauth.DPoP(client, dpopKeys);

    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const params = new URLSearchParams({
      response_type: 'code',
      redirect_uri: REDIRECT_URI,
      state,
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      authorization_details: JSON.stringify([{
        type: DATA_ACCESS, fields: ['contact.email'], actions: ['read'], purpose: 'dpv:ServiceProvision',
      }]),
    });
    const pushed = await oauth.processPushedAuthorizationResponse(
      as, client, await oauth.pushedAuthorizationRequest(as, client, clientAuth, params, insecure),
    );
    assert.match(pushed.request_uri, /^urn:ietf:params:oauth:request_uri:/);

    // The browser: the authorization endpoint with client_id and request_uri only.
    const authorize = new URL(/** @type {string} */ (as.authorization_endpoint));
    authorize.searchParams.set('client_id', client_id);
    authorize.searchParams.set('request_uri', pushed.request_uri);
    const landed = await fetch(authorize, { redirect: 'manual' });
    assert.equal(landed.status, 303);
    const consent = new URL(/** @type {string} */ (landed.headers.get('location')), base);
    assert.equal(consent.pathname, '/consent');
    const request = consent.searchParams.get('request');
    const decided = await ownerApi(base, owner, 'POST', `/api/v1/consent/${request}`, { decision: 'approve' });
    assert.equal(decided.status, 200, JSON.stringify(decided.data));

    // Back at the brand: oauth4webapi checks state and iss, then exchanges the code with DPoP.
    const callback = oauth.validateAuthResponse(as, client, new URL(decided.data.redirect_to), state);
    // The vault asks for its nonce first (use_dpop_nonce); the library keeps the nonce it is
    // given and the brand retries, as oauth4webapi's documentation says to.
    const exchange = async () => oauth.processAuthorizationCodeResponse(
      as, client,
      await oauth.authorizationCodeGrantRequest(as, client, clientAuth, callback, REDIRECT_URI, verifier, { DPoP, ...insecure }),
    );
    let exchanged;
    let askedForNonce = false;
    try {
      exchanged = await exchange();
    } catch (err) {
      assert.ok(oauth.isDPoPNonceError(err), `only a nonce request is retried: ${err}`);
      askedForNonce = true;
      exchanged = await exchange();
    }
    assert.ok(askedForNonce, 'the token endpoint asked for a DPoP nonce');
    assert.equal(exchanged.token_type, 'dpop');
    assert.ok(exchanged.refresh_token, 'a refresh token comes with the code');

    const data = await oauth.protectedResourceRequest(
      exchanged.access_token, 'GET', new URL(`${base}/brand/v1/data`), new Headers(), null, { DPoP, ...insecure },
    );
    assert.equal(data.status, 200, await data.clone().text());
    const body = await data.json();
    assert.equal(body.fields['contact.email'], 'ada@example.org');

    // The bound token is no bearer token.
    const asBearer = await fetch(`${base}/brand/v1/data`, { headers: { Authorization: `Bearer ${exchanged.access_token}` } });
    assert.equal(asBearer.status, 401);
    assert.match(asBearer.headers.get('www-authenticate') ?? '', /^DPoP /);
  } finally {
    await stopServer(server);
  }
});
