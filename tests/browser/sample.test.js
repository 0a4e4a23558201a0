// Browser tests of the demo: samples/index.html served by the proxy itself
// (`sockjsproxy --samples samples`, sockjs-client found in node_modules from
// the repo root, as a developer runs it) with the datereply backend, in Rust
// (examples/datereply) and in Python (samples/datereply-sjp.py, when pyzmq is
// installed). After a round trip it saves target/browser/sample-page.png.
// Run: node --test tests/browser/
'use strict';

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const h = require('./lib/harness');

const { TRANSPORTS } = h;
const SCREENSHOT = path.join(h.ROOT, 'target/browser/sample-page.png');
const STEP_MS = 10000;

let browser;

before(async () => {
  h.requireFiles();
  browser = await h.launchBrowser();
}, { timeout: 60000 });

after(async () => {
  if (browser) await browser.close().catch(() => {});
}, { timeout: 30000 });

/** The demo as documented: proxy with the CLI flags, plus one backend. */
async function startDemo(backend) {
  const [http, pushPort, pullPort] = await h.freePorts(3);
  const zmqFlags = ['-a', '127.0.0.1', '-i', String(pushPort), '-o', String(pullPort)];
  const proxy = h.startProcess('sockjsproxy', h.PROXY_BIN,
    [...zmqFlags, '-p', String(http), '--http-address', '127.0.0.1', '--samples', 'samples', '--verbose'],
    { rustLog: 'debug' });
  const procs = [proxy];
  try {
    procs.push(backend === 'python'
      ? h.startProcess('datereply-sjp.py', 'python3', ['-u', 'samples/datereply-sjp.py', ...zmqFlags])
      : h.startProcess('datereply', h.DATEREPLY_BIN, zmqFlags));
    const url = `http://127.0.0.1:${http}/samples/`;
    await h.waitForHttp(url, proxy);
    return { url, proxy, backend: procs[1], stop: () => Promise.all(procs.map((p) => p.stop())) };
  } catch (e) {
    await Promise.all(procs.map((p) => p.stop()));
    throw e;
  }
}

/**
 * Opens the sample page (with `?transport=` when given), waits until it is
 * connected, sends `text` and waits for the reply and the backend's close.
 * Returns what the page shows.
 */
async function roundTrip(page, url, transport, text) {
  await page.goto(transport ? `${url}?transport=${transport}` : url, { timeout: STEP_MS });
  await page.locator('#status.open').waitFor({ timeout: STEP_MS });
  const shown = await page.locator('#transport').textContent();
  await page.locator('#text').fill(text);
  await page.locator('#send').click();
  await page.locator('#status.closed').waitFor({ timeout: STEP_MS });
  return {
    transport: shown,
    status: await page.locator('#status').textContent(),
    log: (await page.locator('#log > div').allTextContents()),
  };
}

function assertRoundTrip(shown, transport, text) {
  if (transport) assert.equal(shown.transport, transport, 'the transport the page shows');
  assert.equal(shown.status, 'closed: 3000 Go away!');
  const replies = shown.log.filter((l) => l.startsWith('< '));
  assert.equal(replies.length, 1, `one reply in ${JSON.stringify(shown.log)}`);
  assert.match(replies[0], /^< The time now is: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
  assert.ok(shown.log.includes(`> ${text}`), 'the page shows what was sent');
}

describe('samples/index.html with examples/datereply', () => {
  let demo;
  let page;
  before(async () => {
    demo = await startDemo('rust');
    page = await browser.newPage({ viewport: { width: 900, height: 700 } });
  }, { timeout: 30000 });
  after(async () => {
    if (page) await page.close().catch(() => {});
    if (demo) await demo.stop();
  }, { timeout: 30000 });

  test('connects on load, shows the reply, the transport and the close; screenshot', async () => {
    const text = 'Hello from the browser test, é 中文 😀';
    const shown = await roundTrip(page, demo.url, null, text);
    assert.equal(shown.transport, 'websocket', 'SockJS picks websocket when it may');
    assertRoundTrip(shown, null, text);
    const { match } = await demo.backend.waitForLine(/^connect (\d+)$/, 0, STEP_MS);
    const message = await demo.backend.waitForLine(new RegExp(`^message ${match[1]} (.*)$`), 0, STEP_MS);
    assert.equal(JSON.parse(message.match[1]), text, 'the backend got the text intact');
    await demo.backend.waitForLine(new RegExp(`^disconnect ${match[1]}$`), 0, STEP_MS);
    fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true, timeout: STEP_MS });
    assert.ok(fs.statSync(SCREENSHOT).size > 1000, 'screenshot written');
  });

  for (const transport of TRANSPORTS) {
    test(`the transport picker forces ${transport}`, async () => {
      const shown = await roundTrip(page, demo.url, transport, `via ${transport}`);
      assertRoundTrip(shown, transport, `via ${transport}`);
    });
  }

  test('the Connect button reconnects after the backend closed', async () => {
    await page.goto(demo.url, { timeout: STEP_MS });
    await page.locator('#status.open').waitFor({ timeout: STEP_MS });
    await page.locator('#text').fill('first');
    await page.locator('#send').click();
    await page.locator('#status.closed').waitFor({ timeout: STEP_MS });
    await page.locator('#connect').click();
    await page.locator('#status.open').waitFor({ timeout: STEP_MS });
    await page.locator('#text').fill('second');
    await page.locator('#send').click();
    await page.locator('#status.closed').waitFor({ timeout: STEP_MS });
    const replies = (await page.locator('#log > div').allTextContents()).filter((l) => l.startsWith('< '));
    assert.equal(replies.length, 2, JSON.stringify(replies));
  });
});

describe('samples/index.html with samples/datereply-sjp.py', { skip: !h.havePyzmq() && 'pyzmq is not installed' }, () => {
  let demo;
  before(async () => { demo = await startDemo('python'); }, { timeout: 30000 });
  after(async () => { if (demo) await demo.stop(); }, { timeout: 30000 });

  for (const transport of ['websocket', 'iframe-xhr-polling']) {
    test(`a round trip over ${transport}`, async () => {
      const page = await browser.newPage();
      try {
        const mark = demo.backend.lines.length;
        const text = `python via ${transport} é`;
        const shown = await roundTrip(page, demo.url, transport, text);
        assertRoundTrip(shown, transport, text);
        const { match } = await demo.backend.waitForLine(/^connect (\d+)$/, mark, STEP_MS);
        const message = await demo.backend.waitForLine(new RegExp(`^message ${match[1]} (.*)$`), mark, STEP_MS);
        assert.equal(JSON.parse(message.match[1]), text, 'the backend got the text intact');
        await demo.backend.waitForLine(new RegExp(`^disconnect ${match[1]}$`), mark, STEP_MS);
      } finally {
        await page.close().catch(() => {});
      }
    });
  }
});
