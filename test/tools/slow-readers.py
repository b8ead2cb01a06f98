#!/usr/bin/env python3
# Clients that request an event stream and then never read it, for
# test/gateway/events-limits.test.ts. Node cannot set SO_RCVBUF on a TCP
# socket; here each socket gets a small receive buffer before it connects, so
# the kernel takes almost nothing off the server and what the server does not
# hold back piles up in its own memory. Each connects from its own loopback
# address (<source-prefix>1, 2, …), so a per-address cap does not stop them.
#
#   slow-readers.py <host> <port> <path> <last-event-id> <count> <source-prefix> <rcvbuf>
#
# Prints "open <i>" per connection, then "all open". On SIGUSR1 it reads every
# socket to its end (at most 20 s each) and prints "closed <i> <bytes> <eof|reset|timeout> <status line>",
# then "done" and exits. Bounded: nothing loops without an end.
import signal
import socket
import sys

host, port, path, last_event_id, count, source_prefix, rcvbuf = sys.argv[1:8]
port, count, rcvbuf = int(port), int(count), int(rcvbuf)

sockets = []
for i in range(1, count + 1):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.bind((f"{source_prefix}{i}", 0))
    s.connect((host, port))
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
        f"Last-Event-ID: {last_event_id}\r\n\r\n"
    )
    s.sendall(request.encode("ascii"))
    sockets.append(s)
    print(f"open {i}", flush=True)
print("all open", flush=True)


def read_all(signum, frame):
    for i, s in enumerate(sockets, start=1):
        s.settimeout(20)
        received = bytearray()
        how = "eof"
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                received += chunk
        except ConnectionResetError:
            how = "reset"
        except socket.timeout:
            how = "timeout"
        status = bytes(received.split(b"\r\n", 1)[0]).decode("latin-1")
        print(f"closed {i} {len(received)} {how} {status}", flush=True)
        s.close()
    print("done", flush=True)
    sys.exit(0)


signal.signal(signal.SIGUSR1, read_all)
# Waits for SIGUSR1 or SIGTERM; the test stops the process either way.
for _ in range(600):
    signal.pause()
