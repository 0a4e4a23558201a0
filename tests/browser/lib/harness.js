// Shared helpers of the browser tests (tests/browser/*.test.js): free loopback
// ports, child processes (the real sockjsproxy and zmq backends) that are
// always stopped, a tiny static HTTP server for cross-origin test pages, and
// Chromium through playwright-core. Not a test file itself.
'use strict';

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const PROXY_BIN = process.env.SOCKJSPROXY_BIN || path.join(ROOT, 'target/release/sockjsproxy');
const ECHO_BIN = process.env.SOCKJSPROXY_ECHO_BIN || path.join(ROOT, 'target/release/examples/echo');
const DATEREPLY_BIN =
  process.env.SOCKJSPROXY_DATEREPLY_BIN || path.join(ROOT, 'target/release/examples/datereply');
const SOCKJS_CLIENT = path.join(ROOT, 'node_modules/sockjs-client/dist/sockjs.min.js');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--no-first-run', '--disable-quic', '--disable-sync',
];

/** Throws a one-line explanation when something the tests need is missing. */
function requireFiles() {
  const missing = [
    [PROXY_BIN, 'cargo build --release --bin sockjsproxy'],
    [ECHO_BIN, 'cargo build --release --example echo'],
    [DATEREPLY_BIN, 'cargo build --release --example datereply'],
    [SOCKJS_CLIENT, 'npm ci'],
    [CHROMIUM, 'tests/browser/setup.sh'],
  ].filter(([file]) => !fs.existsSync(file));
  if (missing.length) {
    throw new Error('missing ' + missing.map(([f, fix]) => `${f} (run: ${fix})`).join(', '));
  }
}

/** A TCP port free on 127.0.0.1 right now (the OS picks it). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function freePorts(n) {
  const ports = new Set();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

const running = new Set();
// Whatever happens to the test process, no child outlives it.
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => process.exit(128 + (signal === 'SIGINT' ? 2 : 15)));
}

/**
 * Starts a child process and keeps its output: `lines` holds stdout lines,
 * `output(n)` its last lines (for failure messages), `waitForLine(re, from, ms)`
 * waits for a stdout line matching `re` at index >= `from`.
 */
function startProcess(name, file, args, options = {}) {
  const child = spawn(file, args, {
    cwd: options.cwd || ROOT,
    env: { ...process.env, RUST_LOG: options.rustLog || 'warn', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const proc = { name, child, lines: [], all: '', exited: null, waiters: new Set() };
  let partial = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    proc.all += chunk;
    const parts = (partial + chunk).split('\n');
    partial = parts.pop();
    proc.lines.push(...parts);
    for (const w of proc.waiters) w();
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => { proc.all += chunk; });
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      running.delete(child);
      proc.exited = { code, signal };
      for (const w of proc.waiters) w();
      resolve(proc.exited);
    });
  });
  child.on('error', (e) => { proc.all += `\n[spawn error: ${e.message}]`; });
  /** The last `n` lines of its output (stdout and stderr), for failure messages. */
  proc.output = (n = 40) => `--- last lines of ${name}'s output ---\n${proc.all.split('\n').slice(-n - 1).join('\n')}`;

  proc.waitForLine = (re, from = 0, ms = 10000) => new Promise((resolve, reject) => {
    const check = () => {
      for (let i = from; i < proc.lines.length; i++) {
        const m = proc.lines[i].match(re);
        if (m) return finish(null, { index: i, match: m });
      }
      if (proc.exited) finish(new Error(`${name} exited (${JSON.stringify(proc.exited)}) before printing ${re}\n${proc.output(12)}`));
      return undefined;
    };
    const timer = setTimeout(() => finish(new Error(`${name} printed no line matching ${re} within ${ms} ms\n${proc.output(12)}`)), ms);
    function finish(err, value) {
      clearTimeout(timer);
      proc.waiters.delete(check);
      if (err) reject(err); else resolve(value);
    }
    proc.waiters.add(check);
    check();
  });

  /** SIGTERM, then SIGKILL if it is still there after `graceMs`. */
  proc.stop = async (graceMs = 3000) => {
    if (proc.exited) return proc.exited;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    const result = await exited;
    clearTimeout(timer);
    return result;
  };
  return proc;
}

/** Polls `url` until it answers 200, or fails after `ms` (or if `proc` exits). */
async function waitForHttp(url, proc, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (proc && proc.exited) throw new Error(`${proc.name} exited early\n${proc.output()}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) {
      throw new Error(`${url} did not answer 200 within ${ms} ms\n${proc ? proc.output() : ''}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A static HTTP server on 127.0.0.1 that answers `/` with `html`. */
async function servePage(html) {
  const server = http.createServer((req, res) => {
    if (req.url === '/' || req.url.startsWith('/?')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(html);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
    }
  });
  server.keepAliveTimeout = 1000;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** Chromium (Debian's) driven by playwright-core; never downloads a browser. */
async function launchBrowser() {
  const { chromium } = require('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    args: CHROMIUM_FLAGS,
    headless: true,
    timeout: 30000,
  });
}

/** Whether `python3 -c "import zmq"` works (for the Python sample backend). */
function havePyzmq() {
  const r = spawnSync('python3', ['-c', 'import zmq'], { stdio: 'ignore', timeout: 10000 });
  return r.status === 0;
}

/** Rejects after `ms` with `what` unless `promise` settles first. */
function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
    }),
  ]);
}

/** How long a page may take to open a transport (also the client's transport timeout), and any other step. */
const OPEN_MS = 10000;
const STEP_MS = 10000;

/**
 * Runs `fn(page, logs)` on a fresh tab of `context` at `url`, once the test
 * page (`window.T`) and sockjs-client are loaded; `logs` collects console.log
 * texts from any of its frames (the iframes included). The tab is closed after.
 */
async function withPage(context, url, fn) {
  const page = await context.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(m.text()));
  try {
    await page.goto(url, { timeout: STEP_MS });
    await page.waitForFunction(() => window.T && window.SockJS, null, { timeout: STEP_MS });
    return await fn(page, logs);
  } finally {
    await page.close().catch(() => {});
  }
}

/** page.evaluate, bounded even if the page hangs. */
function run(page, fn, arg, what) {
  return withTimeout(page.evaluate(fn, arg), STEP_MS + OPEN_MS, what);
}

// Every sockjs-client transport, in the order the tests go through them.
const TRANSPORTS = [
  'websocket', 'xhr-streaming', 'xhr-polling', 'eventsource',
  'iframe-eventsource', 'iframe-htmlfile', 'iframe-xhr-polling', 'jsonp-polling',
];

module.exports = {
  TRANSPORTS,
  ROOT, PROXY_BIN, ECHO_BIN, DATEREPLY_BIN, SOCKJS_CLIENT,
  requireFiles, freePorts, startProcess, waitForHttp, servePage, launchBrowser,
  havePyzmq, withTimeout, OPEN_MS, STEP_MS, withPage, run,
};
