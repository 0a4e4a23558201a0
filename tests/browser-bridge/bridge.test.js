// zmq-bridge.js in headless Chromium against the real proxy binary and the
// real sample backends (examples/bridge_backend.rs): REQ round trip, SUB
// stream, RPC call, RPC error, policy refusal and reconnection.
//
//   npm install --no-save playwright-core   # if the root node_modules lacks it
//   node --test tests/browser-bridge/
//
// Needs Debian's chromium at /usr/bin/chromium (or CHROMIUM=path) and cargo.

'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');

const ROOT = path.resolve(__dirname, '..', '..');
const TARGET = process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target');
const WAIT = 10000;

let proxy, backend, browser, page, port, rep, pub, policy;
const children = [];

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    const open = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function run(file, args) {
  const child = spawn(file, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, RUST_LOG: 'warn' } });
  children.push(child);
  return child;
}

async function startProxy() {
  const [i, o] = [await freePort(), await freePort()];
  proxy = run(path.join(TARGET, 'release', 'sockjsproxy'), [
    '-a', '127.0.0.1', '-i', String(i), '-o', String(o), '--workers', '1',
    '--http-address', '127.0.0.1', '--http-port', String(port),
    '--samples', 'samples',
    '--bridge', '/data', '--bridge-policy', policy, '--bridge-timeout', '5',
  ]);
  await waitForPort(port, WAIT);
}

function stop(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', resolve);
    child.kill('SIGKILL');
  });
}

before(async () => {
  // The release build every other test uses (tests/all.sh made it): no
  // second, debug copy of the crate.
  execFileSync('cargo', ['build', '--release', '--bin', 'sockjsproxy', '--example', 'bridge_backend'], {
    cwd: ROOT, stdio: 'inherit', timeout: 600000,
  });
  port = await freePort();
  rep = `tcp://127.0.0.1:${await freePort()}`;
  pub = `tcp://127.0.0.1:${await freePort()}`;
  policy = path.join(os.tmpdir(), `bridge-browser-policy-${process.pid}.toml`);
  fs.writeFileSync(policy, `
[[allow]]
endpoint = "${rep}"
socket_types = ["REQ"]

[[allow]]
endpoint = "${pub}"
socket_types = ["SUB"]
`);
  backend = run(path.join(TARGET, 'release', 'examples', 'bridge_backend'),
    ['--rep', rep, '--pub', pub, '--interval-ms', '100']);
  await startProxy();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run'],
  });
  page = await browser.newPage();
  page.setDefaultTimeout(WAIT);
  const query = new URLSearchParams({ rep, pub }).toString();
  await page.goto(`http://127.0.0.1:${port}/samples/bridge.html?${query}`);
});

after(async () => {
  if (browser) await browser.close();
  for (const child of children) await stop(child);
  if (policy) fs.rmSync(policy, { force: true });
});

const text = (selector) => page.locator(selector).textContent();

test('sample page: REQ round trip', { timeout: WAIT * 2 }, async () => {
  await page.fill('#echo-input', 'hello bridge ☃');
  await page.click('#echo-form button');
  await page.waitForFunction(() => document.getElementById('echo-reply').textContent !== '');
  assert.strictEqual(await text('#echo-reply'), 'hello bridge ☃');
});

test('sample page: SUB stream drives a PubRPCServer', { timeout: WAIT * 2 }, async () => {
  await page.waitForFunction(() => /^\d+$/.test(document.getElementById('counter').textContent));
  const first = Number(await text('#counter'));
  await page.waitForFunction((n) => Number(document.getElementById('counter').textContent) > n, first);
});

test('sample page: RPC call and RPC errors', { timeout: WAIT * 2 }, async () => {
  const result = async (button) => {
    await page.evaluate(() => { document.getElementById('rpc-result').textContent = ''; });
    await page.click(button);
    await page.waitForFunction(() => document.getElementById('rpc-result').textContent !== '');
    return text('#rpc-result');
  };
  assert.strictEqual(await result('#rpc-add'), '5');
  // The guard can_add_user is called and obeyed (the original's was broken).
  assert.deepStrictEqual(JSON.parse(await result('#rpc-hugo')), { status: 'success', user: 'hugo', type: 'boy' });
  assert.strictEqual(await result('#rpc-eve'), 'error: unauthorized access');
});

test('API: raw SUB stream, target syntax, RPC errors, refused connect', { timeout: WAIT * 2 }, async () => {
  const got = await page.evaluate(({ rep, pub }) => new Promise((resolve, reject) => {
    setTimeout(() => reject(new Error('timed out')), 8000);
    const out = {};
    const ctx = new zmq.Context(`ws://${location.host}/data`);
    const sub = ctx.Socket(zmq.SUB, pub, { filter: '{"funcname":"counter"' });
    const seen = [];
    sub.callback((m) => { seen.push(JSON.parse(m).args[0]); });
    // The target syntax: Socket(type, endpoint, params), then send an object.
    const req = ctx.Socket(zmq.REQ, rep, { username: 'hugo' });
    req.send({ myrequest: 'hello' }, (reply) => { out.object = reply; });
    const rpc = new zmq.RPCClient(req);
    rpc.rpc('nosuch', [], {}, () => { out.unknown = 'called back'; }, (e) => { out.unknown = e; });
    rpc.rpc('fail', [], {}, () => {}, (e) => { out.fail = e; });
    rpc.rpc('echo', 'hello!', {}, (v) => { out.echo = v; });
    const denied = ctx.Socket(zmq.REQ);
    denied.connect('tcp://127.0.0.1:1', {}, (error) => { out.refused = error; });
    denied.send('x', () => {}, (e) => { out.refusedSend = e; });
    const bad = ctx.Socket(zmq.REQ);
    bad.connect('tcp://nope', {}, (error) => { out.malformed = error; });
    const check = setInterval(() => {
      if (seen.length >= 3 && out.echo && out.malformed && out.refusedSend) {
        clearInterval(check);
        out.seen = seen;
        resolve(out);
      }
    }, 20);
  }), { rep, pub });
  assert.strictEqual(got.object, '{"myrequest":"hello"}');
  assert.match(got.unknown, /unknown function/);
  assert.strictEqual(got.fail, 'fail always fails');
  assert.strictEqual(got.echo, 'hello!');
  assert.match(got.refused, /denied by policy/);
  assert.match(got.refusedSend, /denied by policy/);
  assert.match(got.malformed, /bad endpoint/);
  assert.ok(got.seen[1] > got.seen[0] && got.seen[2] > got.seen[1], `${got.seen}`);
});

test('API: the context reconnects when the websocket drops', { timeout: WAIT * 3 }, async () => {
  await page.evaluate((rep) => {
    window.rc = { ctx: new zmq.Context(`ws://${location.host}/data`, { reconnectDelay: 100 }), closes: 0 };
    window.rc.ctx.onclose = () => { window.rc.closes += 1; };
    window.rc.req = window.rc.ctx.Socket(zmq.REQ, rep, {});
    return new Promise((resolve) => window.rc.req.send('before', resolve));
  }, rep);
  await stop(proxy);
  await page.waitForFunction(() => window.rc.closes > 0);
  await startProxy();
  const reply = await page.evaluate(() => new Promise((resolve, reject) => {
    window.rc.req.send('after', resolve, reject);
  }));
  assert.strictEqual(reply, 'after');
});
