#!/usr/bin/env python3
"""The "date reply" sample backend of sockjsproxy, in Python with pyzmq.

It answers each client message with ``The time now is: <now>`` and then
disconnects that session, so the browser sees one reply and a close (code
3000). It logs every connect and disconnect. When the proxy gives
connection info (``--connect-info``, or authentication), it greets each new
session by its user's name, or its address. The same backend in Rust is
``examples/datereply.rs``.

    pip install pyzmq
    target/release/sockjsproxy --samples samples --verbose &
    python3 samples/datereply-sjp.py      # then visit http://localhost:8080/samples/

The proxy binds a PUSH socket (``--in-port``, default 9241) that sends
``[type, session, data]`` events and a PULL socket (``--out-port``, default
9242) that takes ``[message|disconnect, session, data]`` commands; this
backend connects a PULL to the first and a PUSH to the second.

With CURVE (README.rst, "Securing the backend link"), give it its secret
certificate and the proxy's public one:

    target/release/sockjsproxy keygen keys
    target/release/sockjsproxy keygen clients --name backend1
    target/release/sockjsproxy --samples samples \
        --curve-secret-key keys/sockjsproxy.key_secret --curve-clients clients &
    python3 samples/datereply-sjp.py --curve-secret clients/backend1.key_secret \
        --curve-server keys/sockjsproxy.key
"""

import argparse
import datetime
import json
import sys

import zmq


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-a", "--address", default="127.0.0.1",
                        help="host of the proxy's 0MQ sockets (default 127.0.0.1)")
    parser.add_argument("-i", "--in-port", type=int, default=9241,
                        help="the proxy's PUSH port, where events come from (default 9241)")
    parser.add_argument("-o", "--out-port", type=int, default=9242,
                        help="the proxy's PULL port, where commands go (default 9242)")
    parser.add_argument("--curve-secret", metavar="CERT",
                        help="this backend's secret certificate: speak CURVE")
    parser.add_argument("--curve-server", metavar="CERT",
                        help="the proxy's public certificate (with --curve-secret)")
    args = parser.parse_args()
    if bool(args.curve_secret) != bool(args.curve_server):
        parser.error("--curve-secret and --curve-server go together")
    host = "127.0.0.1" if args.address in ("*", "0.0.0.0") else args.address

    ctx = zmq.Context()
    events = ctx.socket(zmq.PULL)
    commands = ctx.socket(zmq.PUSH)
    commands.setsockopt(zmq.LINGER, 1000)
    if args.curve_secret:
        secure(args, events, commands)
    events.connect("tcp://%s:%d" % (host, args.in_port))
    commands.connect("tcp://%s:%d" % (host, args.out_port))
    log("datereply serving: events from tcp://%s:%d, commands to tcp://%s:%d%s"
        % (host, args.in_port, host, args.out_port,
           " (CURVE)" if args.curve_secret else ""))

    try:
        while True:
            parts = events.recv_multipart()
            if len(parts) != 3:
                log("event with %d parts ignored" % len(parts))
                continue
            kind, session, data = parts
            sid = session.decode("utf-8", "replace")
            if kind == b"connect":
                log("connect %s" % sid)
                greeting = greet(data)
                if greeting:
                    commands.send_multipart([b"message", session, greeting.encode("utf-8")])
            elif kind == b"disconnect":
                log("disconnect %s" % sid)
            elif kind == b"message":
                text = data.decode("utf-8", "replace")
                log("message %s %s" % (sid, json.dumps(text, ensure_ascii=False)))
                now = datetime.datetime.now(datetime.timezone.utc)
                reply = "The time now is: %s" % now.strftime("%Y-%m-%d %H:%M:%S UTC")
                commands.send_multipart([b"message", session, reply.encode("utf-8")])
                commands.send_multipart([b"disconnect", session, b""])
            else:
                log("unknown event %r ignored" % kind)
    except KeyboardInterrupt:
        pass
    finally:
        events.close(0)
        commands.close()
        ctx.term()


def secure(args, *sockets):
    """Sets CURVE keys on `sockets`: ours from --curve-secret, the proxy's
    from --curve-server (ZeroMQ certificate files, as `keygen` writes)."""
    import zmq.auth
    if not zmq.has("curve"):
        sys.exit("this libzmq has no CURVE (pyzmq's wheels have it)")
    public, secret = zmq.auth.load_certificate(args.curve_secret)
    server, _ = zmq.auth.load_certificate(args.curve_server)
    if secret is None:
        sys.exit("%s has no secret key: give the *_secret file" % args.curve_secret)
    for s in sockets:
        s.curve_publickey, s.curve_secretkey, s.curve_serverkey = public, secret, server


def greet(data):
    """``Hello, <user>!`` when the connect data (with --connect-info or
    authentication on; empty otherwise) names a user or an address."""
    if not data:
        return None
    try:
        who = json.loads(data)
    except ValueError:
        log("connect data not understood: %r" % data[:80])
        return None
    name = who.get("user") or who.get("remote_addr") if isinstance(who, dict) else None
    return "Hello, %s!" % name if name else None


def log(line):
    print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
