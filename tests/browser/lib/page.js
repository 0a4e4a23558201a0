// The cross-origin test page of the browser tests: served by the harness's
// static server on its own port, it loads sockjs-client from the proxy (another
// port, so another origin) and exposes `window.T`, small promise-returning
// helpers that the tests call through Playwright's page.evaluate. Every helper
// is bounded in time and resolves with what happened rather than throwing, so
// that a failing assertion shows the close code or the messages received.
// `openRaw` opens the browser's own WebSocket instead of a SockJS session.
'use strict';

function testPage(proxyOrigin) {
  return `<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>sockjsproxy browser test</title>
<script src="${proxyOrigin}/sockjs-client/sockjs.min.js"></script>
</head>
<body>
<p>sockjsproxy browser test page</p>
<script>
'use strict';
window.T = (function () {
  var socks = {};
  var next = 1;

  function waitUntil(cond, ms) {
    return new Promise(function (resolve) {
      var t0 = Date.now();
      (function poll() {
        if (cond()) return resolve(true);
        if (Date.now() - t0 > ms) return resolve(false);
        setTimeout(poll, 20);
      })();
    });
  }

  function state(s) {
    return { transport: s.openedWith, messages: s.messages.slice(), closed: s.closed };
  }

  return {
    // Opens a session with exactly one transport allowed. Resolves when it is
    // open (or closed, or after ms) with its id and the transport in use.
    open: function (url, transport, ms) {
      var id = next++;
      var s = socks[id] = { messages: [], closed: null, openedWith: null, sock: null };
      s.sock = new SockJS(url, null, { transports: [transport], timeout: ms });
      s.sock.onopen = function () { s.openedWith = s.sock.transport; };
      s.sock.onmessage = function (e) { s.messages.push(e.data); };
      s.sock.onclose = function (e) {
        s.closed = { code: e.code, reason: e.reason, wasClean: e.wasClean };
      };
      return waitUntil(function () { return s.openedWith || s.closed; }, ms).then(function () {
        var r = state(s);
        r.id = id;
        return r;
      });
    },
    // Sends each text in order, then waits for as many messages back.
    echo: function (id, texts, ms) {
      var s = socks[id];
      texts.forEach(function (t) { s.sock.send(t); });
      return waitUntil(function () { return s.messages.length >= texts.length || s.closed; }, ms)
        .then(function () { return state(s); });
    },
    // Opens the browser's own WebSocket on a raw websocket endpoint
    // (ws://.../websocket); the other helpers then work on it as on a session.
    openRaw: function (url, ms) {
      var id = next++;
      var s = socks[id] = { messages: [], closed: null, openedWith: null, sock: null };
      s.sock = new WebSocket(url);
      s.sock.onopen = function () { s.openedWith = 'raw websocket'; };
      s.sock.onmessage = function (e) { s.messages.push(e.data); };
      s.sock.onclose = function (e) {
        s.closed = { code: e.code, reason: e.reason, wasClean: e.wasClean };
      };
      return waitUntil(function () { return s.openedWith || s.closed; }, ms).then(function () {
        var r = state(s);
        r.id = id;
        return r;
      });
    },
    send: function (id, text) { socks[id].sock.send(text); },
    // Waits for the session to close (by the server) and says how.
    waitClose: function (id, ms) {
      var s = socks[id];
      return waitUntil(function () { return s.closed; }, ms).then(function () { return state(s); });
    },
    // Closes from the browser, as an application would.
    // Resolves once the close event fired (or after ms).
    close: function (id, ms) {
      var s = socks[id];
      s.sock.close();
      return waitUntil(function () { return s.closed; }, ms || 5000).then(function () { return state(s); });
    },
  };
})();
</script>
</body>
</html>
`;
}

module.exports = { testPage };
