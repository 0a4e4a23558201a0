"""A Mongrel2 handler for the tests, written to the message formats of
Mongrel2's python library (examples/python/mongrel2/handler.py and
request.py in the mongrel2 repository): requests read from a PULL socket as
`SENDER CONN_ID PATH SIZE:HEADERS,SIZE:BODY,`, replies published as
`SENDER SIZE:IDS, BODY`, HTTP responses and websocket frames encoded by the
handler itself.

Usage: m2_handler.py SEND_SPEC RECV_SPEC [json|tnetstring]

What it does depends on the path (and, for websockets, on the text):
  /m2/echo        200 with a JSON summary of the request (Content-Length)
  /m2/body        200 echoing the request body
  /m2/chunked     a chunked response, one chunk per reply message
  /m2/parts       a Content-Length response cut into three reply messages
  /m2/close       a close-delimited body, then an empty reply
  /m2/silent      no answer at all
  /m2/disconnects the connection ids it was told are gone, as JSON (each
                  also printed as `disconnect ID`; each websocket handshake
                  is printed as `open ID`)
  /m2/garbage     a reply that is not HTTP
  /m2/flood       64 replies of 1 MiB at once, a 64 MiB Content-Length body
                  (as fast as the handler can publish, whoever reads it)
  websocket text  echoed; "ping:X" makes it ping with X and report the pong;
                  "all:X" sends X to every open websocket in one reply;
                  "bye" makes it close; "bad" sends a masked (malformed) frame
"""
import json
import sys

import tnetstring
import zmq

send_spec, recv_spec = sys.argv[1], sys.argv[2]
protocol = sys.argv[3] if len(sys.argv) > 3 else "json"

ctx = zmq.Context()
reqs = ctx.socket(zmq.PULL)
reqs.connect(send_spec)
resp = ctx.socket(zmq.PUB)
resp.connect(recv_spec)

disconnected = []
websockets = set()


def text(v):
    return v.decode() if isinstance(v, bytes) else v


def parse(msg):
    sender, conn_id, path, rest = msg.split(b" ", 3)
    headers, rest = tnetstring.pop(rest)
    body, _ = tnetstring.pop(rest)
    if isinstance(headers, bytes):
        headers = json.loads(headers)
    else:
        if protocol != "tnetstring":
            raise ValueError("tnetstring headers on a json route")
        headers = {text(k): (text(v) if not isinstance(v, list) else [text(x) for x in v])
                   for k, v in headers.items()}
    return text(sender), text(conn_id), text(path), headers, body


def send(sender, ids, msg):
    ids = " ".join(str(i) for i in ids)
    resp.send(("%s %d:%s, " % (sender, len(ids), ids)).encode() + msg)


def http_response(body, code=200, status="OK", headers=None):
    headers = dict(headers or {})
    headers["Content-Length"] = len(body)
    head = "\r\n".join("%s: %s" % (k, v) for k, v in headers.items())
    return ("HTTP/1.1 %s %s\r\n%s\r\n\r\n" % (code, status, head)).encode() + body


def ws_frame(data, opcode=1):
    n = len(data)
    if n < 126:
        head = bytes([0x80 | opcode, n])
    elif n < 2 ** 16:
        head = bytes([0x80 | opcode, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 127]) + n.to_bytes(8, "big")
    return head + data


def http(sender, conn, path, headers, body):
    if path == "/m2/echo":
        summary = {"headers": headers, "body_length": len(body)}
        send(sender, [conn], http_response(json.dumps(summary).encode(),
                                           headers={"Content-Type": "application/json"}))
    elif path == "/m2/body":
        send(sender, [conn], http_response(body, headers={"X-Handler": "m2"}))
    elif path == "/m2/chunked":
        send(sender, [conn], b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part in (b"first ", b"second ", b"third"):
            send(sender, [conn], b"%x\r\n%s\r\n" % (len(part), part))
        send(sender, [conn], b"0\r\n\r\n")
    elif path == "/m2/parts":
        whole = http_response(b"0123456789" * 10)
        for i in range(0, len(whole), len(whole) // 3 + 1):
            send(sender, [conn], whole[i:i + len(whole) // 3 + 1])
    elif path == "/m2/close":
        send(sender, [conn], b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil ")
        send(sender, [conn], b"the end")
        send(sender, [conn], b"")
    elif path == "/m2/silent":
        pass
    elif path == "/m2/disconnects":
        send(sender, [conn], http_response(json.dumps(disconnected).encode()))
    elif path == "/m2/flood":
        piece = b"f" * (1 << 20)
        send(sender, [conn], b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (64 * len(piece)))
        msg = ("%s %d:%s, " % (sender, len(conn), conn)).encode() + piece
        for _ in range(64):
            resp.send(msg, copy=False)
    elif path == "/m2/garbage":
        send(sender, [conn], b"this is not http\r\n\r\n")
    else:
        send(sender, [conn], http_response(b"not found\n", 404, "Not Found"))


def websocket(sender, conn, headers, body):
    flags = int(headers["FLAGS"], 16)
    opcode = flags & 0xF
    if opcode == 0x8:
        websockets.discard(conn)
        send(sender, [conn], ws_frame(body, 0x8))
        send(sender, [conn], b"")
    elif opcode == 0x9:
        send(sender, [conn], ws_frame(body, 0xA))
    elif opcode == 0xA:
        send(sender, [conn], ws_frame(b"pong:" + body))
    elif body.startswith(b"ping:"):
        send(sender, [conn], ws_frame(body[5:], 0x9))
    elif body.startswith(b"all:"):
        send(sender, sorted(websockets, key=int), ws_frame(body[4:]))
    elif body == b"bye":
        websockets.discard(conn)
        send(sender, [conn], ws_frame(b"\x03\xe8bye", 0x8))
        send(sender, [conn], b"")
    elif body == b"bad":
        send(sender, [conn], b"\x81\x82abcdxx")
        send(sender, [conn], ws_frame(b"after bad"))
    else:
        send(sender, [conn], ws_frame(body, opcode))


print("m2_handler ready", flush=True)
while True:
    sender, conn, path, headers, body = parse(reqs.recv())
    method = headers.get("METHOD")
    if method == "JSON" and json.loads(body).get("type") == "disconnect":
        disconnected.append(int(conn))
        print("disconnect %s" % conn, flush=True)
        websockets.discard(conn)
    elif method == "WEBSOCKET_HANDSHAKE":
        websockets.add(conn)
        print("open %s" % conn, flush=True)
        send(sender, [conn], ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
                              % text(body)).encode())
    elif method == "WEBSOCKET":
        websocket(sender, conn, headers, body)
    else:
        http(sender, conn, path, headers, body)
