// Browser tests of Mongrel2 handlers (README.rst, "Mongrel2 handlers"): real
// Chromium, the real sockjs-client and the real proxy, against the chat room
// of samples/m2_chat.py, an ordinary Mongrel2 websocket handler (pyzmq).
// Over every SockJS transport, a session of the `backend = "mongrel2"`
// service sends a message and gets it back from the room (which delivers to
// every connection, the sender included); and the browser's own WebSocket on
// a `[[mongrel2]]` route talks to a second room directly, as behind Mongrel2.
// Run: node --test tests/browser/
'use strict';

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const h = require('./lib/harness');
const { testPage } = require('./lib/page');

const { TRANSPORTS } = h;
const { OPEN_MS, STEP_MS, run } = h;
const CHAT = path.join(h.ROOT, 'samples', 'm2_chat.py');

const skip = !h.havePyzmq() && 'python3 with pyzmq not found';
let tmp;
let proxy;
let rooms = [];
let server;
let browser;
let context;
let proxyUrl;

before(async () => {
  if (skip) return;
  h.requireFiles();
  const [httpPort, send1, recv1, send2, recv2] = await h.freePorts(5);
  proxyUrl = `http://127.0.0.1:${httpPort}`;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sjp-m2-'));
  const toml = path.join(tmp, 'proxy.toml');
  const ep = (p) => `tcp://127.0.0.1:${p}`;
  fs.writeFileSync(toml, `http_address = "127.0.0.1"\nhttp_port = ${httpPort}\nworkers = 2\n`
    + `sockjs_client = ${JSON.stringify(h.SOCKJS_CLIENT)}\n\n`
    + `[[service]]\nprefix = "/m2chat"\nbackend = "mongrel2"\nsend_spec = "${ep(send1)}"\n`
    + `send_ident = "7ab8f3b4-2b4e-4d7c-9a43-3d6c2fa0c0de"\nrecv_spec = "${ep(recv1)}"\n\n`
    + `[[mongrel2]]\nroute = "/m2ws"\nsend_spec = "${ep(send2)}"\n`
    + `send_ident = "3f0e2c55-8a0b-4f57-b0b4-8a8a8e2c7d11"\nrecv_spec = "${ep(recv2)}"\n`);
  proxy = h.startProcess('sockjsproxy', h.PROXY_BIN, ['--config', toml], { rustLog: 'info' });
  await h.waitForHttp(`${proxyUrl}/m2chat/info`, proxy);
  rooms = [[send1, recv1], [send2, recv2]].map(([s, r], i) =>
    h.startProcess(`m2_chat ${i + 1}`, 'python3', [CHAT, ep(s), ep(r)]));
  for (const room of rooms) await room.waitForLine(/^m2_chat: requests from/);
  // Their PUB sockets join the proxy's SUB a moment after connecting.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  server = await h.servePage(testPage(proxyUrl));
  browser = await h.launchBrowser();
  context = await browser.newContext();
}, { timeout: 60000 });

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (server) await server.close();
  await Promise.all([proxy, ...rooms].filter(Boolean).map((p) => p.stop()));
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
}, { timeout: 30000 });

/** A fresh tab of the test page; see harness.js. */
function withPage(fn) {
  return h.withPage(context, server.url, fn);
}

/** Sends `text` until the room answers (the handler's PUB may still be joining). */
async function roundTrip(page, id, text) {
  const deadline = Date.now() + STEP_MS;
  for (;;) {
    const got = await run(page, ([i, t, ms]) => window.T.echo(i, [t], ms), [id, text, 1000], 'round trip');
    if (got.messages.includes(text) || got.closed || Date.now() > deadline) return got;
  }
}

for (const transport of TRANSPORTS) {
  describe(transport, { skip }, () => {
    test('a Mongrel2 websocket handler serves the session', async () => {
      await withPage(async (page) => {
        const url = `${proxyUrl}/m2chat`;
        const opened = await run(page, ([u, t, ms]) => window.T.open(u, t, ms), [url, transport, OPEN_MS], `open with ${transport}`);
        assert.equal(opened.closed, null, `closed: ${JSON.stringify(opened.closed)}\n${proxy.output()}`);
        assert.equal(opened.transport, transport);
        const text = `hello over ${transport} \u00e9\u4e2d`;
        const got = await roundTrip(page, opened.id, text);
        assert.ok(got.messages.includes(text), `${JSON.stringify(got)}\n${proxy.output()}\n${rooms[0].output()}`);
      });
    });
  });
}

describe('the browser\'s own WebSocket on a [[mongrel2]] route', { skip }, () => {
  test('the handshake goes through the handler and messages come back', async () => {
    await withPage(async (page) => {
      const url = `${proxyUrl.replace(/^http/, 'ws')}/m2ws/room`;
      const opened = await run(page, ([u, ms]) => window.T.openRaw(u, ms), [url, OPEN_MS], 'open raw');
      assert.equal(opened.closed, null, `${JSON.stringify(opened)}\n${proxy.output()}`);
      const got = await roundTrip(page, opened.id, 'straight to the room');
      assert.ok(got.messages.includes('straight to the room'), JSON.stringify(got));
    });
  });
});
