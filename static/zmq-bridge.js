/*
 * zmq-bridge.js: the browser side of sockjsproxy's bridge mode.
 *
 * Browser JavaScript gets REQ and SUB "sockets" to 0MQ REP and PUB services,
 * all multiplexed over one websocket in ZmqWebBridge's wire format. No
 * dependencies, no build step: load it with a <script> tag (the proxy serves
 * it at /zmq-bridge.js) and use the global `zmq`.
 *
 *   var ctx = new zmq.Context('ws://localhost:8080/data');
 *   var req = ctx.Socket(zmq.REQ);
 *   req.connect('tcp://127.0.0.1:10001', {username: 'hugo'});
 *   req.send('hello', function (reply) { console.log(reply); },
 *                     function (error) { console.warn(error); });
 *
 *   var sub = ctx.Socket(zmq.SUB, 'tcp://127.0.0.1:10002', {msgfilter: ''});
 *   sub.onmessage = function (message) { console.log(message); };
 *
 * Unlike the original: REQ errors and timeouts reach an error callback instead
 * of leaving the socket busy forever, frames for unknown sockets are ignored
 * instead of throwing, the caller's params object is not modified, and the
 * context reconnects (and re-connects its sockets) when the websocket drops.
 */
(function (root) {
  'use strict';

  var zmq = {SUB: 2, REQ: 3};

  /* 32 upper-case hex characters, as the original's identities. */
  function newIdentity() {
    var bytes = new Uint8Array(16);
    if (root.crypto && root.crypto.getRandomValues) {
      root.crypto.getRandomValues(bytes);
    } else {
      for (var i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
    }
    var hex = '';
    for (var j = 0; j < 16; j++) hex += (bytes[j] + 0x100).toString(16).slice(1);
    return hex.toUpperCase();
  }

  function warn(text) {
    if (root.console) root.console.warn('zmq-bridge: ' + text);
  }

  function errorText(content) {
    try {
      var parsed = JSON.parse(content);
      return parsed.error || parsed.status || String(content);
    } catch (e) {
      return String(content);
    }
  }

  /*
   * One websocket to the proxy. Options: reconnect (default true),
   * reconnectDelay (ms, default 1000, doubled up to maxReconnectDelay).
   * Hooks: onopen(), onclose(event), onerror(text) for errors with no socket.
   */
  function Context(url, options) {
    if (!(this instanceof Context)) return new Context(url, options);
    options = options || {};
    this.url = url;
    this.reconnect = options.reconnect !== false;
    this.reconnectDelay = options.reconnectDelay === undefined ? 1000 : options.reconnectDelay;
    this.maxReconnectDelay = options.maxReconnectDelay || 30000;
    this.sockets = {};
    this.closed = false;
    this.onopen = null;
    this.onclose = null;
    this.onerror = null;
    this._delay = this.reconnectDelay;
    this._open();
  }

  Context.prototype._open = function () {
    var self = this;
    var WS = root.WebSocket || root.MozWebSocket;
    var ws = new WS(this.url);
    this.ws = ws;
    ws.onopen = function () {
      self._delay = self.reconnectDelay;
      for (var id in self.sockets) self.sockets[id]._opened();
      if (self.onopen) self.onopen();
    };
    ws.onmessage = function (event) { self._dispatch(event.data); };
    ws.onclose = function (event) {
      if (self.ws !== ws) return;
      self.ws = null;
      var willReconnect = self.reconnect && !self.closed;
      for (var id in self.sockets) self.sockets[id]._lost(willReconnect);
      if (self.onclose) self.onclose(event);
      if (willReconnect) {
        setTimeout(function () { if (!self.closed) self._open(); }, self._delay);
        self._delay = Math.min(self._delay * 2, self.maxReconnectDelay);
      }
    };
  };

  Context.prototype.isOpen = function () {
    return !!this.ws && this.ws.readyState === 1;
  };

  /* Creates a socket; with an endpoint it connects at once (the target syntax). */
  Context.prototype.Socket = function (type, endpoint, params, callback) {
    return new Socket(this, type, endpoint, params, callback);
  };

  Context.prototype.close = function () {
    this.closed = true;
    if (this.ws) this.ws.close();
  };

  Context.prototype._send = function (frame) {
    if (!this.isOpen()) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  };

  Context.prototype._dispatch = function (data) {
    var frame;
    try {
      frame = JSON.parse(data);
    } catch (e) {
      warn('frame is not JSON: ' + data);
      return;
    }
    var socket = frame && this.sockets[frame.identity];
    if (socket) {
      socket._handle(frame);
    } else if (frame && frame.msg_type === 'error') {
      if (this.onerror) this.onerror(errorText(frame.content));
      else warn(errorText(frame.content));
    }
    // A frame for a socket we no longer have is ignored (the original threw).
  };

  /*
   * A virtual REQ or SUB socket. Hooks: onmessage(content) for SUB messages,
   * onerror(text) for errors no callback took, onconnect().
   */
  function Socket(ctx, type, endpoint, params, callback) {
    if (type !== zmq.REQ && type !== zmq.SUB) throw new Error('zmq-bridge: socket type must be zmq.REQ or zmq.SUB');
    this.ctx = ctx;
    this.type = type;
    this.identity = newIdentity();
    this.state = 'new';
    this.onmessage = null;
    this.onerror = null;
    this.onconnect = null;
    this._requests = [];
    this._inflight = null;
    ctx.sockets[this.identity] = this;
    if (endpoint) this.connect(endpoint, params, callback);
  }

  /* callback(error): error is null on success, else the proxy's reason. */
  Socket.prototype.connect = function (endpoint, params, callback) {
    this.endpoint = endpoint;
    this.params = {};
    params = params || {};
    for (var key in params) {
      if (Object.prototype.hasOwnProperty.call(params, key)) this.params[key] = params[key];
    }
    this._connected = callback || null;
    this.state = 'connecting';
    if (this.ctx.isOpen()) this._sendConnect();
  };

  /* The target syntax's sub_socket.callback(fn). */
  Socket.prototype.callback = function (fn) {
    this.onmessage = fn;
  };

  /* REQ only: callback(reply) or errback(error); requests are answered in order. */
  Socket.prototype.send = function (message, callback, errback) {
    if (this.type !== zmq.REQ) {
      this._fail({errback: errback}, 'cannot send on a SUB socket');
      return;
    }
    if (typeof message !== 'string') message = JSON.stringify(message);
    this._requests.push({message: message, callback: callback, errback: errback});
    this._pump();
  };

  Socket.prototype.close = function () {
    delete this.ctx.sockets[this.identity];
    this.state = 'closed';
    this._failAll('socket closed');
  };

  Socket.prototype._sendConnect = function () {
    var content = {};
    for (var key in this.params) content[key] = this.params[key];
    // The target syntax spelled the SUB prefix `filter`.
    var filter = content.msgfilter !== undefined ? content.msgfilter : content.filter;
    delete content.filter;
    delete content.msgfilter;
    content.zmq_conn_string = this.endpoint;
    content.socket_type = this.type;
    if (this.type === zmq.SUB) content.msgfilter = filter || '';
    this.ctx._send({identity: this.identity, msg_type: 'connect', content: JSON.stringify(content)});
  };

  Socket.prototype._opened = function () {
    if (this.state === 'connecting') this._sendConnect();
  };

  Socket.prototype._lost = function (willReconnect) {
    if (this._inflight) {
      var request = this._inflight;
      this._inflight = null;
      this._fail(request, 'connection lost');
    }
    if (this.state === 'connected' || this.state === 'connecting') {
      this.state = willReconnect ? 'connecting' : 'disconnected';
    }
    if (!willReconnect) this._failAll('connection lost');
  };

  Socket.prototype._pump = function () {
    if (this.state !== 'connected' || this._inflight || !this._requests.length) return;
    var request = this._requests.shift();
    this._inflight = request;
    if (!this.ctx._send({identity: this.identity, msg_type: 'userlevel', content: request.message})) {
      this._inflight = null;
      this._requests.unshift(request);
    }
  };

  Socket.prototype._handle = function (frame) {
    if (frame.msg_type === 'connection_reply') {
      var error = null;
      try {
        if (JSON.parse(frame.content).status !== 'success') error = errorText(frame.content);
      } catch (e) {
        error = 'bad connection_reply';
      }
      var callback = this._connected;
      this._connected = null;
      if (error) {
        this.state = 'refused';
        this._failAll(error);
        if (callback) callback(error);
        else this._error(error);
        return;
      }
      this.state = 'connected';
      if (callback) callback(null);
      if (this.onconnect) this.onconnect();
      this._pump();
    } else if (frame.msg_type === 'error') {
      var text = errorText(frame.content);
      if (this.type === zmq.REQ && this._inflight) {
        var failed = this._inflight;
        this._inflight = null;
        this._fail(failed, text);
        this._pump();
      } else {
        this._error(text);
      }
    } else if (this.type === zmq.REQ) {
      var request = this._inflight;
      this._inflight = null;
      if (request && request.callback) request.callback(frame.content);
      this._pump();
    } else if (this.onmessage) {
      this.onmessage(frame.content);
    }
  };

  Socket.prototype._fail = function (request, text) {
    if (request.errback) request.errback(text);
    else this._error(text);
  };

  Socket.prototype._failAll = function (text) {
    var requests = this._requests;
    this._requests = [];
    for (var i = 0; i < requests.length; i++) this._fail(requests[i], text);
  };

  Socket.prototype._error = function (text) {
    if (this.onerror) this.onerror(text);
    else warn(text);
  };

  /*
   * RPC over a REQ socket: rpc(funcname, args, kwargs, callback, errback).
   * callback gets `returnval`; errback gets the error_msg of an error reply
   * (the original passed `undefined` to the callback instead).
   */
  function RPCClient(socket) {
    if (!(this instanceof RPCClient)) return new RPCClient(socket);
    this.socket = socket;
  }

  RPCClient.prototype.rpc = function (funcname, args, kwargs, callback, errback) {
    var socket = this.socket;
    if (args === undefined || args === null) args = [];
    else if (!Array.isArray(args)) args = [args];
    function fail(text) {
      if (errback) errback(text);
      else socket._error(text);
    }
    var request = {funcname: funcname, args: args, kwargs: kwargs || {}};
    socket.send(JSON.stringify(request), function (reply) {
      var parsed;
      try {
        parsed = JSON.parse(reply);
      } catch (e) {
        fail('reply is not JSON: ' + reply);
        return;
      }
      if (parsed && parsed.status === 'error') fail(parsed.error_msg || 'error');
      else if (callback) callback(parsed ? parsed.returnval : undefined);
    }, fail);
  };

  /*
   * Lets a server call functions in the browser through a SUB socket:
   * messages {"funcname", "args"} call this[funcname](...args). Give the
   * methods as the second argument, assign them, or subclass.
   */
  function PubRPCServer(socket, methods) {
    if (!(this instanceof PubRPCServer)) return new PubRPCServer(socket, methods);
    for (var name in methods || {}) this[name] = methods[name];
    var self = this;
    if (socket) socket.onmessage = function (message) { self.handle(message); };
  }

  PubRPCServer.prototype.handle = function (message) {
    var call;
    try {
      call = JSON.parse(message);
    } catch (e) {
      warn('PubRPCServer: message is not JSON: ' + message);
      return;
    }
    var name = call && call.funcname;
    var reserved = typeof name !== 'string' || name.charAt(0) === '_' ||
      Object.prototype.hasOwnProperty.call(PubRPCServer.prototype, name) ||
      Object.prototype.hasOwnProperty.call(Object.prototype, name);
    if (reserved || typeof this[name] !== 'function') {
      warn('PubRPCServer: no function ' + name);
      return;
    }
    try {
      this[name].apply(this, Array.isArray(call.args) ? call.args : []);
    } catch (e) {
      warn('PubRPCServer: ' + name + ' threw ' + e);
    }
  };

  zmq.Context = Context;
  zmq.Socket = Socket;
  zmq.RPCClient = RPCClient;
  zmq.PubRPCServer = PubRPCServer;

  if (typeof module === 'object' && module.exports) module.exports = zmq;
  else root.zmq = zmq;
})(typeof window !== 'undefined' ? window : this);
