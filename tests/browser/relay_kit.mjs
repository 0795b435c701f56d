// The intent relay for the browser tests (DESIGN §11): a real `nats-server
// -js` on a free loopback port, the real `vrm-vault relay` over it, and a
// brand the operator admitted with `vrm-vault relay admit`, written here
// with nothing but Node's own crypto, as any brand's software could be:
// ES256 JWS (RFC 7515, ieee-p1363 signatures) for its client assertions
// (RFC 7523 private_key_jwt) and its acceptances of the person's terms,
// RFC 8785 JSON for the offer digest, and ECDH-ES key agreement (RFC 7518
// §4.6, Concat KDF) with AES key wrap and AES-GCM to read what a vault
// encrypted to it (RFC 7516 compact JWE).
//
// The NATS server is the binary NATS_SERVER_BIN names (`bash
// tests/nats/install.sh` prints its path; .ci/run sets it). Without it the
// relay's browser test fails and says how to get it: it is never skipped.

import { after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import crypto from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { ACTION_MS, fetchJson } from './helpers.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SERVER_BIN = process.env.VRM_VAULT_BIN
  ? path.resolve(process.env.VRM_VAULT_BIN)
  : path.resolve(HERE, '..', '..', 'target', 'debug', 'vrm-vault');
const START_MS = 20_000;

const children = new Set();
const dirs = [];

function killAll() {
  for (const child of children) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
}
process.on('exit', killAll);
after(() => {
  killAll();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(prefix) {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/** A loopback port that was free a moment ago. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (server.address());
      server.close(() => resolve(port));
    });
  });
}

/** The nats-server binary, or a failure that says how to get it. */
export function natsServerBin() {
  const bin = process.env.NATS_SERVER_BIN;
  assert.ok(bin, 'NATS_SERVER_BIN is not set: the relay test needs nats-server with JetStream. Install it with `export NATS_SERVER_BIN=$(bash tests/nats/install.sh)` (bash .ci/run does this).');
  assert.ok(existsSync(bin), `NATS_SERVER_BIN=${bin} is not a file: install nats-server there (bash tests/nats/install.sh).`);
  return bin;
}

/** `nats-server -js` on a free loopback port with a temporary store; resolves to its URL once it accepts. */
export async function startNats() {
  const bin = natsServerBin();
  const port = await freePort();
  const child = spawn(bin, ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', tempDir('vrm-nats-')], { stdio: 'ignore' });
  children.add(child);
  child.on('exit', () => children.delete(child));
  const deadline = Date.now() + START_MS;
  for (;;) {
    const up = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => { socket.end(); resolve(true); });
      socket.on('error', () => resolve(false));
    });
    if (up) return `nats://127.0.0.1:${port}`;
    assert.ok(child.exitCode === null, `nats-server exited (code ${child.exitCode})`);
    assert.ok(Date.now() < deadline, `nats-server did not start on port ${port}`);
    await sleep(50);
  }
}

/** `vrm-vault relay --nats URL --listen 127.0.0.1:0`; resolves to its URL once /readyz says 200. */
export async function startRelay(natsUrl) {
  const child = spawn(SERVER_BIN, ['relay', '--nats', natsUrl, '--listen', '127.0.0.1:0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1' },
  });
  children.add(child);
  child.on('exit', () => children.delete(child));
  const logs = [];
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => { logs.push(chunk); if (logs.length > 200) logs.shift(); });
  const url = await new Promise((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => reject(new Error(`the relay did not print its address within ${START_MS} ms\n${logs.join('').slice(-3000)}`)), START_MS);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`the relay exited early (code ${code})\n${logs.join('').slice(-3000)}`)); });
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      const match = /^vrm-vault relay listening on (http:\/\/127\.0\.0\.1:\d+)\s*$/m.exec(stdout);
      if (match) { clearTimeout(timer); resolve(match[1]); }
    });
  });
  const deadline = Date.now() + START_MS;
  for (;;) {
    const ready = await fetchJson(`${url}/readyz`).catch(() => ({ status: 0 }));
    if (ready.status === 200) return { url, logs };
    assert.ok(Date.now() < deadline, `the relay at ${url} never became ready\n${logs.join('').slice(-3000)}`);
    await sleep(100);
  }
}

// --- JOSE with node:crypto ----------------------------------------------------------

export const b64url = (bytes) => Buffer.from(bytes).toString('base64url');
const fromB64url = (text) => Buffer.from(text, 'base64url');

/** RFC 8785: members sorted by their UTF-16 code units, numbers and strings as ECMAScript writes them. */
export function canonicalJson(value) {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value).filter((k) => value[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`;
}

/** A compact JWS, ES256 with the signature as r||s (RFC 7518 §3.4). */
export function signJws(privateKey, header, payload) {
  const input = `${b64url(JSON.stringify({ alg: 'ES256', ...header }))}.${b64url(JSON.stringify(payload))}`;
  const signature = crypto.sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${b64url(signature)}`;
}

/** The header and payload of a compact JWS whose ES256 signature `jwk` verifies; throws otherwise. */
export function verifyJws(jws, jwk) {
  const [header, payload, signature] = jws.split('.');
  const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  const ok = crypto.verify('sha256', Buffer.from(`${header}.${payload}`), { key, dsaEncoding: 'ieee-p1363' }, fromB64url(signature));
  assert.ok(ok, 'the JWS verifies with the key it names');
  return { header: JSON.parse(fromB64url(header).toString('utf8')), payload: JSON.parse(fromB64url(payload).toString('utf8')) };
}

/** Concat KDF of RFC 7518 §4.6.2 (one round of SHA-256 per 256 bits). */
function concatKdf(z, alg, bits, apu, apv) {
  const lengthPrefixed = (buf) => Buffer.concat([u32(buf.length), buf]);
  const otherInfo = Buffer.concat([lengthPrefixed(Buffer.from(alg)), lengthPrefixed(apu), lengthPrefixed(apv), u32(bits)]);
  const rounds = Math.ceil(bits / 256);
  const out = [];
  for (let i = 1; i <= rounds; i += 1) out.push(crypto.createHash('sha256').update(Buffer.concat([u32(i), z, otherInfo])).digest());
  return Buffer.concat(out).subarray(0, bits / 8);
}

function u32(n) {
  const buf = Buffer.alloc(4);
  buf.writeUInt32BE(n);
  return buf;
}

/**
 * Decrypt a compact JWE made to `privateKey` with ECDH-ES or ECDH-ES+A*KW
 * and A*GCM; resolves to the header and the plaintext.
 */
export function decryptJwe(jwe, privateKey) {
  const [protectedB64, encryptedKey, iv, ciphertext, tag] = jwe.split('.');
  const header = JSON.parse(fromB64url(protectedB64).toString('utf8'));
  const ephemeral = crypto.createPublicKey({ key: header.epk, format: 'jwk' });
  const z = crypto.diffieHellman({ privateKey, publicKey: ephemeral });
  const apu = header.apu ? fromB64url(header.apu) : Buffer.alloc(0);
  const apv = header.apv ? fromB64url(header.apv) : Buffer.alloc(0);
  const encBits = Number(/^A(\d+)GCM$/.exec(header.enc)[1]);
  let cek;
  if (header.alg === 'ECDH-ES') {
    cek = concatKdf(z, header.enc, encBits, apu, apv);
  } else {
    const kwBits = Number(/^ECDH-ES\+A(\d+)KW$/.exec(header.alg)[1]);
    const kek = concatKdf(z, header.alg, kwBits, apu, apv);
    const unwrap = crypto.createDecipheriv(`id-aes${kwBits}-wrap`, kek, Buffer.from('A6A6A6A6A6A6A6A6', 'hex'));
    cek = Buffer.concat([unwrap.update(fromB64url(encryptedKey)), unwrap.final()]);
  }
  const decipher = crypto.createDecipheriv(`aes-${encBits}-gcm`, cek, fromB64url(iv));
  decipher.setAAD(Buffer.from(protectedB64, 'ascii'));
  decipher.setAuthTag(fromB64url(tag));
  const plaintext = Buffer.concat([decipher.update(fromB64url(ciphertext)), decipher.final()]).toString('utf8');
  return { header, plaintext };
}

// --- A brand at the relay ------------------------------------------------------------

/** A P-256 key pair with its public JWK (kid, use, alg). */
function keyPair(kid, use, alg) {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, use, alg } };
}

/**
 * A brand the relay's operator admitted with `vrm-vault relay admit`: its
 * signing key and encryption key, its relay token, and its calls.
 */
export class RelayBrand {
  constructor(relayUrl, name) {
    this.relayUrl = relayUrl;
    this.name = name;
    const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, '-');
    this.signing = keyPair(`${slug}-sig`, 'sig', 'ES256');
    this.encryption = keyPair(`${slug}-enc`, 'enc', 'ECDH-ES+A256KW');
    this.clientId = null;
    this.token = null;
    this.cursor = 0;
    this.events = [];
  }

  /** The operator admits the brand: `vrm-vault relay admit --nats URL --name NAME --jwks FILE`. */
  async admit(natsUrl) {
    const file = path.join(tempDir('vrm-jwks-'), 'jwks.json');
    writeFileSync(file, JSON.stringify({ keys: [this.signing.jwk, this.encryption.jwk] }));
    const stdout = await new Promise((resolve, reject) => {
      execFile(SERVER_BIN, ['relay', 'admit', '--nats', natsUrl, '--name', this.name, '--jwks', file], { timeout: START_MS },
        (err, out, errOut) => (err ? reject(new Error(`relay admit failed: ${errOut || err.message}`)) : resolve(out)));
    });
    this.clientId = JSON.parse(stdout.trim()).client_id;
    assert.ok(this.clientId, `relay admit printed a client id (got ${stdout})`);
  }

  /** A relay access token by private_key_jwt (RFC 7523): a one-minute assertion for the token endpoint. */
  async authenticate() {
    const now = Math.floor(Date.now() / 1000);
    const assertion = signJws(this.signing.privateKey, { typ: 'JWT', kid: this.signing.jwk.kid }, {
      iss: this.clientId, sub: this.clientId, aud: `${this.relayUrl}/oauth/token`,
      jti: crypto.randomUUID(), iat: now, exp: now + 60,
    });
    const answer = await fetchJson(`${this.relayUrl}/oauth/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: assertion,
      }).toString(),
    });
    assert.equal(answer.status, 200, `the relay's token endpoint answers 200 (got ${answer.status}: ${JSON.stringify(answer.data)})`);
    this.token = answer.data.access_token;
  }

  /** A call to the relay with the brand's token. */
  call(method, route, body = undefined) {
    const headers = { Authorization: `Bearer ${this.token}`, Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    return fetchJson(`${this.relayUrl}${route}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  }

  /** Poll GET /relay/v1/intents?cursor= until an event matches, within `ms`. */
  async waitFor(what, matches, ms = ACTION_MS) {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.events.find(matches);
      if (found) return found;
      const page = await this.call('GET', `/relay/v1/intents?cursor=${this.cursor}`);
      assert.equal(page.status, 200, `GET /relay/v1/intents answers 200 (got ${page.status}: ${JSON.stringify(page.data)})`);
      this.events.push(...page.data.events);
      this.cursor = page.data.next_cursor;
      const now = this.events.find(matches);
      if (now) return now;
      if (Date.now() > deadline) assert.fail(`the brand's poll of the relay never showed ${what} (saw ${this.events.map((e) => e.type).join(', ') || 'nothing'})`);
      await sleep(200);
    }
  }

  /**
   * Answer a relayed intent: the offer, and the brand's acceptance of the
   * person's terms signed over the intent id, the terms' hash and the
   * offer's RFC 8785 digest.
   */
  async offer(intent, offer) {
    const acceptance = signJws(this.signing.privateKey, { kid: this.signing.jwk.kid }, {
      intent_id: intent.id,
      terms_hash: intent.terms_hash,
      offer_sha256: b64url(crypto.createHash('sha256').update(canonicalJson(offer)).digest()),
      iat: Math.floor(Date.now() / 1000),
    });
    const sent = await this.call('POST', `/relay/v1/intents/${intent.id}/offers`, { ...offer, acceptance });
    assert.equal(sent.status, 201, `the relay takes the offer (got ${sent.status}: ${JSON.stringify(sent.data)})`);
    return { id: sent.data.id, acceptance };
  }
}
