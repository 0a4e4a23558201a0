#!/usr/bin/env python3
"""A chat room as a Mongrel2 websocket handler: every message a client sends
goes to every connected client, in one reply per 128 connections (Mongrel2's
`deliver`), so one message costs the handler one zmq send, whatever the room's
size. It is an ordinary Mongrel2 handler (the message formats of Mongrel2's
python library, pyzmq; tnetstring3 when the route says protocol =
"tnetstring"), so the same process serves:

- a `[[mongrel2]]` route: browsers' websockets, as behind Mongrel2 itself;
- a `[[service]]` with `backend = "mongrel2"`: SockJS sessions over every
  transport, each presented to it as a websocket.

    [[service]]
    prefix = "/chat"
    backend = "mongrel2"
    send_spec = "tcp://127.0.0.1:9997"
    send_ident = "7ab8f3b4-2b4e-4d7c-9a43-3d6c2fa0c0de"
    recv_spec = "tcp://127.0.0.1:9996"

    python3 samples/m2_chat.py tcp://127.0.0.1:9997 tcp://127.0.0.1:9996
"""
import json
import sys

import zmq

MAX_IDENTS = 128


def netstring_pop(data):
    """One netstring off the front of `data`: (payload, rest, type byte)."""
    colon = data.index(b":")
    n = int(data[:colon])
    payload, rest = data[colon + 1:colon + 1 + n], data[colon + 2 + n:]
    if data[colon + 1 + n:colon + 2 + n] not in (b",", b"}"):
        raise ValueError("not a netstring")
    return payload, rest, data[colon + 1 + n:colon + 2 + n]


def parse(msg):
    sender, conn_id, path, rest = msg.split(b" ", 3)
    headers, rest, kind = netstring_pop(rest)
    body, _, _ = netstring_pop(rest)
    if kind == b"}":
        import tnetstring  # tnetstring3, for protocol = "tnetstring"
        headers = {k.decode(): v.decode() if isinstance(v, bytes) else v
                   for k, v in tnetstring.loads(b"%d:%s}" % (len(headers), headers)).items()}
    else:
        headers = json.loads(headers)
    return sender.decode(), conn_id.decode(), headers, body


def frame(data, opcode=0x1):
    n = len(data)
    if n < 126:
        head = bytes([0x80 | opcode, n])
    elif n < 1 << 16:
        head = bytes([0x80 | opcode, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 127]) + n.to_bytes(8, "big")
    return head + data


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: m2_chat.py SEND_SPEC RECV_SPEC (the route's or service's "
                 "send_spec and recv_spec), e.g.\n"
                 "  python3 samples/m2_chat.py tcp://127.0.0.1:9997 tcp://127.0.0.1:9996")
    send_spec, recv_spec = sys.argv[1], sys.argv[2]
    ctx = zmq.Context()
    requests = ctx.socket(zmq.PULL)
    requests.connect(send_spec)
    replies = ctx.socket(zmq.PUB)
    replies.connect(recv_spec)
    room = set()

    def send(sender, ids, body):
        ids = " ".join(ids)
        replies.send(("%s %d:%s, " % (sender, len(ids), ids)).encode() + body)

    def deliver(sender, body):
        everyone = sorted(room, key=int)
        for i in range(0, len(everyone), MAX_IDENTS):
            send(sender, everyone[i:i + MAX_IDENTS], body)

    print("m2_chat: requests from %s, replies to %s" % (send_spec, recv_spec), flush=True)
    while True:
        sender, conn, headers, body = parse(requests.recv())
        method = headers.get("METHOD")
        if method == "JSON":
            if json.loads(body).get("type") == "disconnect":
                room.discard(conn)
        elif method == "WEBSOCKET_HANDSHAKE":
            room.add(conn)
            send(sender, [conn], ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                  "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
                                  % body.decode()).encode())
        elif method == "WEBSOCKET":
            opcode = int(headers.get("FLAGS", "0x81"), 16) & 0xF
            if opcode == 0x8:
                room.discard(conn)
                send(sender, [conn], frame(body, 0x8))
                send(sender, [conn], b"")
            elif opcode == 0x9:
                send(sender, [conn], frame(body, 0xA))
            elif opcode in (0x1, 0x2):
                deliver(sender, frame(body, opcode))
        else:
            text = b"This route is a chat room: open a websocket.\n"
            send(sender, [conn], b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(text), text))


if __name__ == "__main__":
    main()
