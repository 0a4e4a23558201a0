// Browser tests of every SockJS transport against the real proxy.
//
// Starts target/release/sockjsproxy (or $SOCKJSPROXY_BIN) with three services
// on free loopback ports, real zmq backends (examples/echo for /echo and
// /close, examples/datereply for /date), a static server on another port for a
// cross-origin test page, and Debian's Chromium via playwright-core. For each
// transport, forced with {transports: [name]}, it checks that the session opens
// with that transport, echoes awkward texts intact and in order, gets a
// backend disconnect as close 3000, and that a close in the browser reaches
// the backend as a `disconnect` event. Over every transport and the raw
// websocket endpoint (the browser's own WebSocket on /echo/websocket), it
// echoes a sweep of characters (lib/texts.js): every printable ASCII
// character, the control characters, every BMP code point outside the
// surrogates in texts of 4096, and astral characters; each must come back
// identical. Run: node --test tests/browser/
'use strict';

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const h = require('./lib/harness');
const { testPage } = require('./lib/page');
const texts = require('./lib/texts');

const { TRANSPORTS } = h;

// Texts that break naive framing, quoting or decoding somewhere on the way.
const TEXTS = [
  'plain ascii',
  'accents: é à ü ß',
  'CJK: 中文 日本語',
  'emoji: 😀 👍🏽 🇫🇷',
  'quotes: "double" \'single\' `back`',
  'backslashes: \\ \\\\ \\n \\u0041 \\"',
  '<b>tags</b> & <!-- comments --> <\\/script>',
  '{"a":1}',
  '["x"]',
  'a["b"]',
  'c[3000,"Go away!"]',
  'line\nbreaks\r\nand\ttabs',
  'controls: \u0001\u001f\u007f and separators: \u2028\u2029',
  'x'.repeat(20000),
];
// A text that ends an HTML script block, then is valid JS that logs if a
// transport lets it run; sent between two plain texts.
const SCRIPT_END = ['before', '</script><script>console.log(/sockjs-injected/.source)</script>', 'after'];

const { OPEN_MS, STEP_MS, run } = h;
// A bound on each sweep test: a page, an open and an echo, each bounded above.
const SWEEP_TEST_MS = 3 * (STEP_MS + OPEN_MS);
// The /date service's disconnect_delay_ms and heartbeat_delay_ms, and how long
// after a browser close its `disconnect` may take to reach the backend. A
// request the browser aborts ends the session at once; but Chromium does not
// abort the request of a removed jsonp <script> element, so that session ends
// when the pending poll completes with a heartbeat, then disconnect_delay later.
const DISCONNECT_DELAY_MS = 2000;
const HEARTBEAT_MS = 3000;
const DISCONNECT_WAIT_MS = HEARTBEAT_MS + DISCONNECT_DELAY_MS + 5000;

let tmp;
let proxy;
let echo;
let date;
let server;
let browser;
let context;
let proxyUrl;
const offHost = [];

before(async () => {
  h.requireFiles();
  const [httpPort, ...zmq] = await h.freePorts(7);
  proxyUrl = `http://127.0.0.1:${httpPort}`;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sjp-browser-'));
  process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
  const service = (prefix, i, extra = '') =>
    `[[service]]\nprefix = "${prefix}"\npush = "tcp://127.0.0.1:${zmq[i]}"\npull = "tcp://127.0.0.1:${zmq[i + 1]}"\n${extra}\n`;
  const echoServices = service('/echo', 0) + service('/close', 2);
  const dateService = service('/date', 4,
    `disconnect_delay_ms = ${DISCONNECT_DELAY_MS}\nheartbeat_delay_ms = ${HEARTBEAT_MS}`);
  const write = (name, text) => {
    fs.writeFileSync(path.join(tmp, name), text);
    return path.join(tmp, name);
  };
  const proxyToml = write('proxy.toml', `http_address = "127.0.0.1"\nhttp_port = ${httpPort}\n`
    + `workers = 2\nsockjs_client = ${JSON.stringify(h.SOCKJS_CLIENT)}\n\n${echoServices}${dateService}`);
  const echoToml = write('echo.toml', echoServices);
  const dateToml = write('date.toml', dateService);

  proxy = h.startProcess('sockjsproxy', h.PROXY_BIN, ['--config', proxyToml], { rustLog: 'info' });
  echo = h.startProcess('echo', h.ECHO_BIN, ['--config', echoToml]);
  date = h.startProcess('datereply', h.DATEREPLY_BIN, ['--config', dateToml]);
  await h.waitForHttp(`${proxyUrl}/echo/info`, proxy);
  server = await h.servePage(testPage(proxyUrl));
  browser = await h.launchBrowser();
  context = await browser.newContext();
  context.on('request', (req) => {
    const { hostname, protocol } = new URL(req.url());
    if (hostname !== '127.0.0.1' && protocol !== 'data:' && protocol !== 'about:') offHost.push(req.url());
  });
}, { timeout: 60000 });

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (server) await server.close();
  await Promise.all([proxy, echo, date].filter(Boolean).map((p) => p.stop()));
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
}, { timeout: 30000 });

/** A fresh tab of the test page; see harness.js. */
function withPage(fn) {
  return h.withPage(context, server.url, fn);
}

function open(page, prefix, transport) {
  return run(page, ([u, t, ms]) => window.T.open(u, t, ms),
    [`${proxyUrl}${prefix}`, transport, OPEN_MS], `open ${prefix} with ${transport}`);
}

/** Like deepEqual on lists of texts, with a short message (texts can be long). */
function assertSameTexts(got, expected, what) {
  const short = (t) => JSON.stringify(t.length > 80 ? `${t.slice(0, 60)}…(${t.length} chars)` : t);
  const i = expected.findIndex((t, k) => got[k] !== t);
  if (i === -1 && got.length === expected.length) return;
  const where = i === -1 ? `${got.length - expected.length} extra after the last` : `text ${i}`;
  assert.fail(`${what}: ${got.length} of ${expected.length} texts, first difference at ${where}: `
    + `got ${i === -1 ? short(got[expected.length]) : got[i] === undefined ? 'nothing' : short(got[i])}`
    + `${i === -1 ? '' : `, expected ${short(expected[i])}`}`);
}

function assertOpened(opened, transport) {
  assert.equal(opened.closed, null,
    `the session closed before it opened: ${JSON.stringify(opened.closed)}\n${proxy.output()}`);
  assert.equal(opened.transport, transport, 'sock.transport once open');
}

/** Sends `sent` on the open session or websocket; each text must come back identical, in order. */
async function assertEchoesIdentical(page, opened, sent) {
  const got = await run(page, ([id, list, ms]) => window.T.echo(id, list, ms),
    [opened.id, sent, STEP_MS], 'echo');
  const diff = texts.firstDifference(got.messages, sent);
  assert.equal(diff, null, `${diff}${got.closed ? `; closed with ${JSON.stringify(got.closed)}` : ''}`);
  assert.equal(got.closed, null, 'closed after the echoes');
}

for (const transport of TRANSPORTS) {
  describe(transport, () => {
    test('opens with this transport and echoes every text intact and in order', async () => {
      await withPage(async (page) => {
        const opened = await open(page, '/echo', transport);
        assertOpened(opened, transport);
        const got = await run(page, ([id, texts, ms]) => window.T.echo(id, texts, ms),
          [opened.id, TEXTS, STEP_MS], 'echo');
        assert.equal(got.closed, null, `closed during the echo: ${JSON.stringify(got.closed)}`);
        assertSameTexts(got.messages, TEXTS, 'echoes');
        const closed = await run(page, (id) => window.T.close(id), opened.id, 'close');
        assertSameTexts(closed.messages, TEXTS, 'no message after the echoes');
      });
    });

    test('a text containing "</script>" arrives intact and never runs as script',
      async () => {
      await withPage(async (page, logs) => {
        const opened = await open(page, '/echo', transport);
        assertOpened(opened, transport);
        const got = await run(page, ([id, texts, ms]) => window.T.echo(id, texts, ms),
          [opened.id, SCRIPT_END, STEP_MS], 'echo');
        assert.ok(!logs.includes('sockjs-injected'), 'the text ran as script in the page');
        assertSameTexts(got.messages, SCRIPT_END, 'echoes');
      });
    });

    test('a backend disconnect on connect closes the session with 3000 "Go away!"', async () => {
      await withPage(async (page) => {
        const opened = await open(page, '/close', transport);
        assert.equal(opened.transport, transport, `sock.transport once open (${JSON.stringify(opened.closed)})`);
        const got = await run(page, ([id, ms]) => window.T.waitClose(id, ms), [opened.id, STEP_MS], 'wait close');
        assert.deepEqual(got.closed && [got.closed.code, got.closed.reason], [3000, 'Go away!']);
        assert.deepEqual(got.messages, []);
      });
    });

    test('a backend reply then disconnect arrive in order (datereply)', async () => {
      await withPage(async (page) => {
        const mark = date.lines.length;
        const opened = await open(page, '/date', transport);
        assertOpened(opened, transport);
        await run(page, ([id, text]) => window.T.send(id, text), [opened.id, 'what time is it? é中😀'], 'send');
        const got = await run(page, ([id, ms]) => window.T.waitClose(id, ms), [opened.id, STEP_MS], 'wait close');
        assert.equal(got.messages.length, 1, `one reply: ${JSON.stringify(got.messages)}`);
        assert.match(got.messages[0], /^The time now is: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
        assert.deepEqual(got.closed && [got.closed.code, got.closed.reason], [3000, 'Go away!']);
        const { match } = await date.waitForLine(/^message \d+ (.*)$/, mark, STEP_MS);
        assert.equal(JSON.parse(match[1]), 'what time is it? é中😀', 'the backend got the text intact');
      });
    });

    for (const [name, make] of Object.entries(texts.SETS)) {
      test(`echoes ${name}, each text identical`, async () => {
        await withPage(async (page) => {
          const opened = await open(page, '/echo', transport);
          assertOpened(opened, transport);
          await assertEchoesIdentical(page, opened, make());
        });
      }, { timeout: SWEEP_TEST_MS });
    }

    test('closing in the browser sends disconnect to the backend within disconnect_delay',
      async () => {
      await withPage(async (page) => {
        const mark = date.lines.length;
        const opened = await open(page, '/date', transport);
        assertOpened(opened, transport);
        const { match } = await date.waitForLine(/^connect (\d+)$/, mark, STEP_MS);
        const session = match[1];
        const closed = await run(page, (id) => window.T.close(id), opened.id, 'close');
        assert.deepEqual(closed.closed && [closed.closed.code, closed.closed.reason], [1000, 'Normal closure']);
        // Without a receiver, the session ends after disconnect_delay at most.
        await date.waitForLine(new RegExp(`^disconnect ${session}$`), mark, DISCONNECT_WAIT_MS);
      });
    });
  });
}

describe('raw websocket (/echo/websocket, the browser\'s own WebSocket)', () => {
  for (const [name, make] of Object.entries(texts.SETS)) {
    test(`echoes ${name}, each text identical`, async () => {
      await withPage(async (page) => {
        const url = `${proxyUrl.replace(/^http/, 'ws')}/echo/websocket`;
        const opened = await run(page, ([u, ms]) => window.T.openRaw(u, ms), [url, OPEN_MS], 'open raw websocket');
        assertOpened(opened, 'raw websocket');
        await assertEchoesIdentical(page, opened, make());
      });
    }, { timeout: SWEEP_TEST_MS });
  }
});

test('the sweep holds every printable ASCII character and every BMP code point outside the surrogates, once each',
  () => {
  const ascii = new Set(texts.printableAscii().filter((t) => t.length === 1));
  assert.equal(ascii.size, 0x7f - 0x20);
  const bmp = texts.bmpChunks(4096);
  assert.ok(bmp.every((t) => t.length <= 4096));
  const codes = [...bmp.join('')].map((c) => c.codePointAt(0));
  assert.equal(codes.length, 0x10000 - 0x800);
  assert.ok(codes.every((cp, i) => cp === (i < 0xd800 ? i : i + 0x800)), 'in order, surrogates left out');
});

test('every request went to 127.0.0.1 (no CDN)', () => {
  assert.deepEqual(offHost, []);
});
