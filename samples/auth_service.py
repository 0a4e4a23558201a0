#!/usr/bin/env python3
"""A sample auth service for sockjsproxy, in Python with pyzmq.

The proxy asks it about every new SockJS session of a service with
``auth = "tcp://127.0.0.1:9250"`` (or ``--auth tcp://127.0.0.1:9250``), and
about bridge-mode websockets and connects with ``--bridge-auth``: one JSON
question per request on a REP socket, one JSON answer back.

    pip install pyzmq
    python3 samples/auth_service.py &
    target/release/sockjsproxy --samples samples --connect-info \\
        --auth tcp://127.0.0.1:9250 &
    # then visit http://localhost:8080/samples/?token=alice

A SockJS question looks like::

    {"type": "sockjs", "remote_addr": "127.0.0.1", "transport": "websocket",
     "prefix": "", "query": "token=alice", "headers": {"user-agent": "..."}}

This sample lets in the users of USERS, named by the ``token`` query
parameter (a real service would look the token up), and answers
``{"allow": true, "user": ..., "data": {...}}`` or
``{"allow": false, "reason": ...}``. The proxy denies the session when the
answer is late (``auth_timeout_ms``, 2 s by default) or not understood.
A REP socket answers one question at a time; the proxy keeps many in
flight, so a slow service should use a ROUTER and answer out of order.
"""

import argparse
import json
import sys
from urllib.parse import parse_qs

import zmq

USERS = {"alice": {"role": "admin"}, "bob": {"role": "user"}}


def decide(question):
    kind = question.get("type")
    if kind == "sockjs":
        token = parse_qs(question.get("query", "")).get("token", [""])[0]
        if token in USERS:
            return {"allow": True, "user": token, "data": USERS[token]}
        return {"allow": False, "reason": "unknown user" if token else "token missing"}
    if kind in ("websocket", "connect"):
        # Bridge mode (--bridge-auth): allow everyone from this machine.
        return {"allow": question.get("remote_addr") == "127.0.0.1",
                "reason": "local clients only"}
    return {"allow": False, "reason": "unknown question"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bind", default="tcp://127.0.0.1:9250",
                        help="where to bind the REP socket (default tcp://127.0.0.1:9250)")
    args = parser.parse_args()
    ctx = zmq.Context()
    socket = ctx.socket(zmq.REP)
    socket.bind(args.bind)
    print("auth service on %s" % args.bind, file=sys.stderr, flush=True)
    while True:
        raw = socket.recv()
        try:
            answer = decide(json.loads(raw))
        except (ValueError, AttributeError):
            answer = {"allow": False, "reason": "bad question"}
        socket.send_string(json.dumps(answer))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
