// Browser tests of "who is connected" (README.rst): real Chromium, the real
// sockjs-client and the real proxy, on every transport. The /who service
// checks a JWT (HS256, audience "chat") from the `token` query parameter and
// gives connection info; its backend, examples/datereply, greets each new
// session by the user the connect JSON names. A good token gets in and is
// greeted as "alice"; an expired, forged, wrong-audience or missing token
// gets the open frame then close 4403 with its reason, as sockjs-client's
// onclose shows it, and never reaches the backend; the browser's own
// WebSocket on the raw endpoint is refused before the upgrade.
// Run: node --test tests/browser/
'use strict';

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const h = require('./lib/harness');
const { testPage } = require('./lib/page');

const { TRANSPORTS } = h;
const { OPEN_MS, STEP_MS, run } = h;
const SECRET = 'the browser tests\' secret';

/** An HS256 JWT, made by hand with node's HMAC. */
function jwt(claims, secret = SECRET) {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const signed = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  const sig = crypto.createHmac('sha256', secret).update(signed).digest('base64url');
  return `${signed}.${sig}`;
}

const now = () => Math.floor(Date.now() / 1000);
const GOOD = () => jwt({ sub: 'alice', aud: 'chat', exp: now() + 600 });
const BAD = {
  expired: [() => jwt({ sub: 'alice', aud: 'chat', exp: now() - 600 }), 'token expired'],
  forged: [() => jwt({ sub: 'admin', aud: 'chat', exp: now() + 600 }, 'guessed'), 'token signature invalid'],
  'wrong audience': [() => jwt({ sub: 'alice', aud: 'billing', exp: now() + 600 }), 'token for another audience'],
  missing: [() => '', 'token missing'],
};

let tmp;
let proxy;
let date;
let server;
let browser;
let context;
let proxyUrl;

before(async () => {
  h.requireFiles();
  const [httpPort, push, pull] = await h.freePorts(3);
  proxyUrl = `http://127.0.0.1:${httpPort}`;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sjp-who-'));
  process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
  const write = (name, text) => {
    fs.writeFileSync(path.join(tmp, name), text);
    return path.join(tmp, name);
  };
  const key = write('jwt.key', SECRET);
  const service = `[[service]]\nprefix = "/who"\npush = "tcp://127.0.0.1:${push}"\npull = "tcp://127.0.0.1:${pull}"\n`;
  const proxyToml = write('proxy.toml', `http_address = "127.0.0.1"\nhttp_port = ${httpPort}\n`
    + `workers = 2\nsockjs_client = ${JSON.stringify(h.SOCKJS_CLIENT)}\n\n${service}`
    + `connect_info = true\n[service.auth_jwt]\nkey_file = ${JSON.stringify(key)}\naudience = "chat"\n`);
  const dateToml = write('date.toml', service);
  proxy = h.startProcess('sockjsproxy', h.PROXY_BIN, ['--config', proxyToml], { rustLog: 'info' });
  date = h.startProcess('datereply', h.DATEREPLY_BIN, ['--config', dateToml]);
  await h.waitForHttp(`${proxyUrl}/who/info`, proxy);
  server = await h.servePage(testPage(proxyUrl));
  browser = await h.launchBrowser();
  context = await browser.newContext();
}, { timeout: 60000 });

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (server) await server.close();
  await Promise.all([proxy, date].filter(Boolean).map((p) => p.stop()));
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
}, { timeout: 30000 });

/** A fresh tab of the test page; see harness.js. */
function withPage(fn) {
  return h.withPage(context, server.url, fn);
}

function open(page, token, transport) {
  const url = `${proxyUrl}/who${token ? `?token=${token}` : ''}`;
  return run(page, ([u, t, ms]) => window.T.open(u, t, ms), [url, transport, OPEN_MS], `open with ${transport}`);
}

for (const transport of TRANSPORTS) {
  describe(transport, () => {
    test('a good token gets in, and the backend greets the user its connect JSON names', async () => {
      await withPage(async (page) => {
        const mark = date.lines.length;
        const opened = await open(page, GOOD(), transport);
        assert.equal(opened.closed, null, `closed: ${JSON.stringify(opened.closed)}\n${proxy.output()}`);
        assert.equal(opened.transport, transport);
        await date.waitForLine(/^connect \d+$/, mark, STEP_MS);
        const greeted = await run(page, ([id, ms]) => window.T.echo(id, ['what time is it?'], ms),
          [opened.id, STEP_MS], 'greeting');
        assert.equal(greeted.messages[0], 'Hello, alice!', JSON.stringify(greeted));
      });
    });

    for (const [name, [token, reason]] of Object.entries(BAD)) {
      test(`a ${name} token: open, then close 4403 "${reason}"; the backend never hears of it`, async () => {
        await withPage(async (page) => {
          const mark = date.lines.length;
          const opened = await open(page, token(), transport);
          const got = await run(page, ([id, ms]) => window.T.waitClose(id, ms), [opened.id, STEP_MS], 'wait close');
          assert.deepEqual(got.closed && [got.closed.code, got.closed.reason], [4403, reason],
            `${JSON.stringify(got)}\n${proxy.output()}`);
          assert.deepEqual(got.messages, []);
          assert.ok(!date.lines.slice(mark).some((l) => l.startsWith('connect')), 'the backend heard a connect');
        });
      });
    }
  });
}

describe('raw websocket (/who/websocket, the browser\'s own WebSocket)', () => {
  test('a good token gets in and is greeted; a bad one is refused before the upgrade', async () => {
    await withPage(async (page) => {
      const base = `${proxyUrl.replace(/^http/, 'ws')}/who/websocket`;
      const good = await run(page, ([u, ms]) => window.T.openRaw(u, ms), [`${base}?token=${GOOD()}`, OPEN_MS], 'open raw');
      assert.equal(good.closed, null, JSON.stringify(good));
      const greeted = await run(page, ([id, ms]) => window.T.echo(id, ['time?'], ms), [good.id, STEP_MS], 'greeting');
      assert.equal(greeted.messages[0], 'Hello, alice!');
      const mark = date.lines.length;
      const bad = await run(page, ([u, ms]) => window.T.openRaw(u, ms), [`${base}?token=${BAD.expired[0]()}`, OPEN_MS], 'open raw');
      assert.equal(bad.transport, null, 'never opened');
      assert.equal(bad.closed && bad.closed.code, 1006, JSON.stringify(bad));
      assert.ok(!date.lines.slice(mark).some((l) => l.startsWith('connect')), 'the backend heard a connect');
    });
  });
});
