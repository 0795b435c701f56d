// What every browser test of the vrm-vault web app shares.
//
// The tests drive Debian's headless Chromium (through playwright-core, which
// never downloads a browser) against a real vrm-vault server started on a
// fresh temporary data directory. They build nothing: build the server first
// (`cargo build`), or point VRM_VAULT_BIN at a binary.
//
//   cd tests/browser && npm ci && node --test
//
// A test file calls setUpBrowserTests() once at its top level: that launches
// Chromium before its tests, cleans up after them, and gives it step() and
// shot(), whose screenshots (in artifacts/screenshots/ at the top of the
// repository, git-ignored) carry the file's prefix. Any console error that is
// not an HTTP error the test provoked on purpose, any uncaught page error and
// any Content Security Policy violation fails the test (watchPage,
// newContext).

import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');
const SERVER_BIN = process.env.VRM_VAULT_BIN
  ? path.resolve(process.env.VRM_VAULT_BIN)
  : path.resolve(HERE, '..', '..', 'target', 'debug', 'vrm-vault');
const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOTS = path.join(REPO, 'artifacts', 'screenshots');

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic', // no outbound QUIC attempts on a closed network
];

// Time limits. Every browser action and wait has ACTION_MS by default; every
// step has its own limit on top; each test has one more.
export const ACTION_MS = 10_000;
const STEP_MS = 20_000;
const SERVER_START_MS = 20_000;
const SERVER_STOP_MS = 10_000;

const servers = new Set(); // every server process started, to kill at the end
const tempDirs = [];
let browser = null;

// --- Set-up and tear-down of a test file --------------------------------------

/**
 * Launch Chromium before the file's tests and clean up after them. Returns
 * step() and shot() for this file: its screenshots are named
 * `${screenshotPrefix}-…` (or carry no prefix when it is ''), so no file's
 * clean-up of old failure screenshots removes another's.
 */
export function setUpBrowserTests({ screenshotPrefix }) {
  const tag = screenshotPrefix ? `${screenshotPrefix}-` : '';

  before(async () => {
    assert.ok(
      existsSync(CHROMIUM),
      `Chromium was not found at ${CHROMIUM}. The browser tests need Debian's chromium package: apt-get install chromium`,
    );
    assert.ok(
      existsSync(SERVER_BIN),
      `vrm-vault binary not found at ${SERVER_BIN}. Build it first (cargo build) or set VRM_VAULT_BIN.`,
    );
    mkdirSync(SCREENSHOTS, { recursive: true });
    // Failure screenshots of an earlier run of this file would mislead.
    for (const name of readdirSync(SCREENSHOTS)) {
      if (name.startsWith(`FAILED-${tag}`)) rmSync(path.join(SCREENSHOTS, name), { force: true });
    }
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: CHROMIUM_ARGS,
      headless: true,
      timeout: 30_000,
    });
  });

  after(async () => {
    killAllServersNow();
    if (browser) await browser.close().catch(() => {});
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  });

  /** Run one step with its own time limit; name it in any failure. */
  async function step(t, page, name, fn, ms = STEP_MS) {
    const started = Date.now();
    let timer;
    try {
      await Promise.race([
        fn(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
        }),
      ]);
    } catch (err) {
      if (page && !page.isClosed()) {
        const file = path.join(SCREENSHOTS, `FAILED-${tag}${slug(name)}.png`);
        await page.screenshot({ path: file, fullPage: true, timeout: 5000 }).catch(() => {});
      }
      err.message = `step "${name}" failed: ${err.message}`;
      throw err;
    } finally {
      clearTimeout(timer);
    }
    t.diagnostic(`ok  ${name} (${Date.now() - started} ms)`);
  }

  async function shot(page, name) {
    await page.screenshot({ path: path.join(SCREENSHOTS, `${tag}${name}.png`), fullPage: true, timeout: ACTION_MS });
  }

  return { step, shot };
}

function slug(text) {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
}

// --- Server ----------------------------------------------------------------

/**
 * Start vrm-vault on 127.0.0.1:0 (or `listen`, to come back on the address
 * of a server stopped before, as a restart does); resolves once it printed
 * its address. `args` are more options for `serve` (`--relay URL`).
 */
export function startServer(dataDir, { listen = '127.0.0.1:0', args = [] } = {}) {
  const child = spawn(SERVER_BIN, ['serve', '--data-dir', dataDir, '--listen', listen, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1' },
  });
  servers.add(child);
  const logs = [];
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    logs.push(chunk);
    if (logs.length > 400) logs.shift();
  });
  child.on('exit', () => servers.delete(child));

  return new Promise((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => {
      fail(new Error(`vrm-vault did not print its address within ${SERVER_START_MS} ms`));
    }, SERVER_START_MS);
    function fail(err) {
      clearTimeout(timer);
      child.kill('SIGKILL');
      err.message += `\n--- server stderr ---\n${logs.join('').slice(-4000)}`;
      reject(err);
    }
    child.on('error', (err) => fail(new Error(`could not start ${SERVER_BIN}: ${err.message}`)));
    child.on('exit', (code, signal) => fail(new Error(`vrm-vault exited early (code ${code}, signal ${signal})`)));
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      const match = /^vrm-vault listening on (http:\/\/127\.0\.0\.1:\d+)\s*$/m.exec(stdout);
      if (match) {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        child.on('exit', () => servers.delete(child));
        resolve({ child, url: match[1], logs });
      }
    });
  });
}

/** SIGTERM, wait for a clean exit (SIGKILL after SERVER_STOP_MS). */
export function stopServer(server) {
  const { child } = server;
  return new Promise((resolve, reject) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve({ code: child.exitCode, signal: child.signalCode });
      return;
    }
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`vrm-vault did not stop within ${SERVER_STOP_MS} ms of SIGTERM`));
    }, SERVER_STOP_MS);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
    child.kill('SIGTERM');
  });
}

function killAllServersNow() {
  for (const child of servers) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
}
// Even if the runner kills this file on a timeout, leave no server behind.
process.on('exit', killAllServersNow);

/** A data directory (not yet created) in a temporary directory removed after the tests. */
export function freshDataDir() {
  const dir = mkdtempSync(path.join(tmpdir(), 'vrm-vault-browser-'));
  tempDirs.push(dir);
  return path.join(dir, 'data');
}

/**
 * What keeps Chromium from offering to install the app at `url`
 * (Page.getInstallabilityErrors; [] when it is installable). A profile on
 * disk of its own: in the tests' usual incognito contexts Chromium never
 * offers to install anything.
 */
export async function installabilityErrors(url) {
  const profile = mkdtempSync(path.join(tmpdir(), 'vrm-vault-profile-'));
  tempDirs.push(profile);
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, timeout: 30_000,
  });
  try {
    const page = await context.newPage();
    await page.goto(url);
    await page.locator('#screen h1').waitFor();
    const cdp = await context.newCDPSession(page);
    const { installabilityErrors: errors } = await cdp.send('Page.getInstallabilityErrors');
    return errors.map((e) => e.errorId);
  } finally {
    await context.close().catch(() => {});
  }
}

// --- Page watching -----------------------------------------------------------

/**
 * Collects console errors, uncaught exceptions and CSP violations. HTTP error
 * statuses the test provokes on purpose are declared with allowHttpError()
 * and not counted.
 */
export function watchPage(page) {
  const problems = [];
  const allowed = []; // { status, pathname }

  page.on('console', (msg) => {
    const text = msg.text();
    if (/Content.Security.Policy/i.test(text)) {
      problems.push(`CSP (console): ${text}`);
      return;
    }
    if (msg.type() !== 'error') return;
    const status = /status of (\d{3})/.exec(text);
    if (status) {
      let pathname = '';
      try { pathname = new URL(msg.location().url).pathname; } catch { /* no url */ }
      const ok = allowed.some((a) => a.status === Number(status[1]) && a.pathname === pathname);
      if (ok) return;
      problems.push(`console error: ${text} (${msg.location().url || 'no url'})`);
      return;
    }
    problems.push(`console error: ${text}`);
  });
  page.on('pageerror', (err) => problems.push(`uncaught page error: ${err.message}`));
  page.on('crash', () => problems.push('the page crashed'));

  return {
    problems,
    allowHttpError(status, pathname) {
      allowed.push({ status, pathname });
    },
    clearAllowed() {
      allowed.length = 0;
    },
    assertClean(where) {
      assert.deepEqual(problems, [], `console errors or CSP violations ${where}`);
    },
  };
}

/**
 * A browser context whose pages report CSP violations (the
 * securitypolicyviolation DOM event) to the test through a binding, which
 * itself is not subject to the page's CSP. `options` are more options for
 * browser.newContext (a geolocation, permissions).
 */
export async function newContext(viewport, options = {}) {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1, reducedMotion: 'reduce', ...options });
  context.setDefaultTimeout(ACTION_MS);
  context.setDefaultNavigationTimeout(ACTION_MS);
  const violations = [];
  await context.exposeBinding('__vrmReportCsp', (_source, v) => violations.push(v));
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__vrmReportCsp(`${e.effectiveDirective} blocked ${e.blockedURI || 'inline'} in ${e.sourceFile || e.documentURI}:${e.lineNumber}`);
    }, true);
  });
  return { context, violations };
}

// --- Screens -------------------------------------------------------------------

/** Wait for the screen whose <h1> has this text. */
export async function expectScreen(page, title) {
  await page.locator('#screen h1', { hasText: title }).waitFor({ state: 'visible' });
  assert.equal((await page.locator('#screen h1').innerText()).trim(), title);
}

/** Wait until a locator's text matches. */
export async function expectText(locator, pattern) {
  await locator.filter({ hasText: pattern }).first().waitFor({ state: 'visible' });
}

export async function assertNoHorizontalOverflow(page, where) {
  const result = await page.evaluate(() => {
    const root = document.documentElement;
    const width = root.clientWidth;
    const wide = [];
    for (const node of document.querySelectorAll('body *')) {
      const box = node.getBoundingClientRect();
      if (box.width > 0 && box.right > width + 0.5) {
        const id = node.id ? `#${node.id}` : '';
        const cls = node.className && typeof node.className === 'string' ? `.${node.className.trim().split(/\s+/).join('.')}` : '';
        wide.push(`${node.tagName.toLowerCase()}${id}${cls} (right edge ${Math.round(box.right)} px)`);
      }
    }
    return { scrollWidth: root.scrollWidth, clientWidth: width, wide: wide.slice(0, 8) };
  });
  assert.ok(
    result.scrollWidth <= result.clientWidth,
    `horizontal overflow on ${where}: scrollWidth ${result.scrollWidth} > clientWidth ${result.clientWidth}; too wide: ${result.wide.join(', ')}`,
  );
}

// --- Accessibility ---------------------------------------------------------------

const AXE_PATH = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
let axeSource = null;

/**
 * Run axe-core in the page and fail on any serious or critical violation;
 * returns the minor and moderate ones, to report. axe is put into the page
 * with page.evaluate (DevTools' Runtime.evaluate), which the page's Content
 * Security Policy does not govern: page.addScriptTag adds an inline
 * <script>, which `script-src 'self'` rightly blocks. So the a11y checks run
 * with the real CSP on, and its violation detector stays meaningful.
 */
export async function checkAccessibility(page, where) {
  if (!axeSource) axeSource = readFileSync(AXE_PATH, 'utf8');
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.slice(0, 4).map((n) => `${n.target.join(' ')}: ${n.failureSummary.replace(/\s+/g, ' ')}`),
    }));
  });
  const serious = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(serious, [], `axe found serious or critical accessibility problems on ${where}`);
  return violations;
}

/** The value next to a label in a list of facts (<dt>label</dt><dd>value</dd>). */
export function factValue(scope, term) {
  return scope.locator(`dt:text-is("${term}") + dd`);
}

/** Fill the setup form, create the vault, confirm the recovery key. */
export async function setUpVault(page, passphrase) {
  await page.getByLabel('Passphrase', { exact: true }).fill(passphrase);
  await page.getByLabel('Repeat the passphrase', { exact: true }).fill(passphrase);
  await page.getByRole('button', { name: 'Create my vault' }).click();
  await expectScreen(page, 'Save your recovery key');
  await page.getByLabel('I have saved my recovery key').check();
  await page.getByRole('button', { name: 'Continue' }).click();
  await expectScreen(page, 'My data');
}

export async function openFromNav(page, link, title) {
  await page.locator('#nav').getByRole('link', { name: link, exact: true }).click();
  await expectScreen(page, title);
}

// --- The owner's API, as a script would use it -----------------------------------

export async function fetchJson(url, init = {}) {
  const response = await fetch(url, { redirect: 'manual', ...init, signal: AbortSignal.timeout(ACTION_MS) });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  return { status: response.status, data, headers: response.headers };
}

/** Log in with the passphrase; the answer's token works as a Bearer token. */
export async function ownerLogin(baseUrl, passphrase) {
  const login = await fetchJson(`${baseUrl}/api/v1/session`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ passphrase }),
  });
  assert.equal(login.status, 201, `POST /api/v1/session answers 201 (got ${login.status}: ${JSON.stringify(login.data)})`);
  assert.ok(login.data && login.data.token, 'the login answer carries a token');
  return login.data.token;
}

/** A JSON call with a Bearer token: the owner's session token or a brand's access token. */
export function bearerApi(baseUrl, token, method, route, body = undefined) {
  const headers = { Authorization: `Bearer ${token}`, Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  return fetchJson(`${baseUrl}${route}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

/** The owner's API with a session token. */
export const ownerApi = bearerApi;

// --- A brand's side, as its own software would do it --------------------------

/** The authorization details type of a data-access grant (RFC 9396). */
export const DATA_ACCESS = 'urn:vrm-vault:data-access:v1';

/** The brand API with the brand's access token. */
export const brandApi = bearerApi;

/** The brand's client-credentials token (every scope it registered). */
export async function brandToken(baseUrl, client) {
  const token = await tokenRequest(baseUrl, client, { grant_type: 'client_credentials' });
  assert.equal(token.status, 200, `a client-credentials token (got ${token.status}: ${JSON.stringify(token.data)})`);
  return token.data.access_token;
}

/** RFC 7591 registration with the invitation's initial access token. */
export function registerBrand(baseUrl, initialAccessToken, metadata) {
  return fetchJson(`${baseUrl}/oauth/register`, {
    method: 'POST',
    headers: {
      Authorization: `Bearer ${initialAccessToken}`,
      'Content-Type': 'application/json',
      Accept: 'application/json',
    },
    body: JSON.stringify({ token_endpoint_auth_method: 'client_secret_basic', ...metadata }),
  });
}

/** HTTP Basic client authentication (RFC 6749 §2.3.1: each part form-encoded first). */
function basicAuth(client) {
  const encode = (s) => encodeURIComponent(s).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${encode(client.client_id)}:${encode(client.client_secret)}`).toString('base64')}`;
}

/** POST /oauth/token with the client's own credentials. */
export function tokenRequest(baseUrl, client, params) {
  return fetchJson(`${baseUrl}/oauth/token`, {
    method: 'POST',
    headers: {
      Authorization: basicAuth(client),
      'Content-Type': 'application/x-www-form-urlencoded',
      Accept: 'application/json',
    },
    body: new URLSearchParams(params).toString(),
  });
}

/** The brand reads the published terms and accepts them by their hash; returns the terms it accepted. */
export async function acceptTerms(baseUrl, client) {
  const terms = await fetchJson(`${baseUrl}/brand/v1/terms`, { headers: { Accept: 'application/json' } });
  assert.equal(terms.status, 200, `GET /brand/v1/terms answers 200 (got ${terms.status}: ${JSON.stringify(terms.data)})`);
  const accepted = await fetchJson(`${baseUrl}/brand/v1/agreements`, {
    method: 'POST',
    headers: { Authorization: basicAuth(client), 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ terms_hash: terms.data.hash }),
  });
  assert.equal(accepted.status, 201, `POST /brand/v1/agreements answers 201 (got ${accepted.status}: ${JSON.stringify(accepted.data)})`);
  return terms.data;
}
