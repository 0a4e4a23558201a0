"""zmqbridge: pyzmq helpers for backends of sockjsproxy's bridge mode.

Browser JavaScript reaches 0MQ services through the proxy; these helpers make
such a service a few lines of Python, in ZmqWebBridge's RPC format:

- ``RPCServer`` answers ``{"funcname", "args", "kwargs"}`` requests on a REP
  socket with ``{"returnval": ...}`` or ``{"status": "error", "error_msg": ...}``
  (for ``zmq.RPCClient`` in the browser).
- ``PubRPCClient`` publishes ``{"funcname", "args"}`` on a PUB socket, calling
  functions of the browsers' ``zmq.PubRPCServer``.

Unlike the original ``GeventZMQRPC``: a ``can_<name>`` guard is really called
(the original called ``can_funcname`` and so broke every guarded function),
``authorized_functions = None`` exposes only the subclass's public methods (not
``_private`` ones, guards or the helpers' own), a lone non-list ``args`` is one
argument, and errors say what went wrong.

    import zmq, zmqbridge

    class Service(zmqbridge.RPCServer):
        authorized_functions = ['echo', 'add_user']

        def echo(self, msg):
            return msg

        def add_user(self, username, password, type='boy'):
            return {'status': 'success'}

        def can_add_user(self, username, password, type='boy'):
            return username == 'hugo'

    socket = zmq.Context.instance().socket(zmq.REP)
    socket.bind('tcp://127.0.0.1:10001')
    Service(socket).serve_forever()

Run as a script, it serves that demo service: ``python3 zmqbridge.py [ENDPOINT]``.

>>> class Demo(RPCServer):
...     def echo(self, msg): return msg
...     def add_user(self, username, password, type='boy'): return {'type': type}
...     def can_add_user(self, username, password, type='boy'): return username == 'hugo'
...     def _secret(self): return 42
>>> d = Demo(None)
>>> d.handle(b'{"funcname": "echo", "args": "hello!"}')
{'returnval': 'hello!'}
>>> d.handle(b'{"funcname": "add_user", "args": ["hugo", "pw"], "kwargs": {"type": "girl"}}')
{'returnval': {'type': 'girl'}}
>>> d.handle(b'{"funcname": "add_user", "args": ["eve", "pw"]}')
{'status': 'error', 'error_msg': 'unauthorized access'}
>>> d.handle(b'{"funcname": "_secret"}')['error_msg']
"unknown function '_secret'"
>>> d.handle(b'{"funcname": "can_add_user", "args": ["hugo", "x"]}')['error_msg']
"unknown function 'can_add_user'"
>>> d.handle(b'{"funcname": "echo"}')['error_msg'].startswith('bad arguments')
True
>>> d.handle(b'not json')['error_msg'].startswith('bad request')
True
>>> PubRPCClient.message('add', 1, 2)
'{"funcname": "add", "args": [1, 2]}'
"""

import json
import logging
import sys

log = logging.getLogger('zmqbridge')


class RPCServer(object):
    """Answers RPC requests on a REP socket; subclass it and add methods."""

    #: Names that may be called; None means every public method of the subclass.
    authorized_functions = None

    def __init__(self, socket):
        self.socket = socket

    def _callable(self, name):
        if not isinstance(name, str) or name.startswith('_') or name.startswith('can_'):
            return None
        if self.authorized_functions is not None:
            if name not in self.authorized_functions:
                return None
        elif hasattr(RPCServer, name):
            return None  # the helper's own methods are not part of the service
        function = getattr(self, name, None)
        return function if callable(function) else None

    def handle(self, raw):
        """One request (bytes) in, one reply (dict) out; never raises."""
        try:
            request = json.loads(raw)
            funcname = request['funcname']
        except (ValueError, TypeError, KeyError) as e:
            return _error('bad request: %s' % e)
        args = request.get('args')
        args = [] if args is None else args if isinstance(args, list) else [args]
        kwargs = request.get('kwargs') or {}
        if not isinstance(kwargs, dict):
            return _error('bad request: kwargs must be an object')
        function = self._callable(funcname)
        if function is None:
            return _error('unknown function %r' % (funcname,))
        try:
            guard = getattr(self, 'can_' + funcname, None)
            if guard is not None and not guard(*args, **kwargs):
                return _error('unauthorized access')
            return {'returnval': function(*args, **kwargs)}
        except TypeError as e:
            return _error('bad arguments: %s' % e)
        except Exception as e:  # the service must outlive its functions' bugs
            log.exception('%s failed', funcname)
            return _error('%s failed: %s' % (funcname, e))

    def serve_forever(self):
        while True:
            raw = b''.join(self.socket.recv_multipart())
            self.socket.send_string(json.dumps(self.handle(raw)))


def _error(message):
    return {'status': 'error', 'error_msg': message}


class PubRPCClient(object):
    """Calls functions of browser zmq.PubRPCServers through a PUB socket."""

    def __init__(self, socket):
        self.socket = socket

    @staticmethod
    def message(funcname, *args):
        # funcname first, so a browser SUB can filter on '{"funcname": "name"'.
        return '{"funcname": %s, "args": %s}' % (json.dumps(funcname), json.dumps(list(args)))

    def rpc(self, funcname, *args):
        self.socket.send_string(self.message(funcname, *args))


class _Demo(RPCServer):
    authorized_functions = ['echo', 'add_user']

    def echo(self, msg):
        return msg

    def add_user(self, username, password, type='boy'):
        return {'status': 'success', 'user': username, 'type': type}

    def can_add_user(self, username, password, type='boy'):
        return username == 'hugo'


if __name__ == '__main__':
    import zmq

    logging.basicConfig(level=logging.INFO)
    endpoint = sys.argv[1] if len(sys.argv) > 1 else 'tcp://127.0.0.1:10001'
    socket = zmq.Context.instance().socket(zmq.REP)
    socket.setsockopt(zmq.LINGER, 0)
    socket.bind(endpoint)
    log.info('demo RPC service on %s', endpoint)
    _Demo(socket).serve_forever()
