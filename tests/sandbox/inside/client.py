"""Runs *inside* the sandbox: talks to the egress proxy (127.0.0.1:3128) or tries to go around it.

Usage: client.py http HOST PORT | https HOST PORT SNI CAFILE | direct ADDRESS PORT
Prints one line: `OK <body>` or `FAIL <reason>`.
"""

import socket
import ssl
import sys
import urllib.request


def http(host: str, port: str) -> str:
    with urllib.request.urlopen(f"http://{host}:{port}/plain", timeout=10) as response:
        return response.read().decode()


def https(host: str, port: str, sni: str, cafile: str) -> str:
    raw = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    raw.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = raw.recv(4096)
        if not chunk:
            raise ConnectionError("proxy closed before answering CONNECT")
        head += chunk
    status = head.split(b"\r\n", 1)[0].decode()
    if " 200 " not in status + " ":
        raise ConnectionError(status)
    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = False  # the point of the test is what SNI we send, not the cert
    tls = context.wrap_socket(raw, server_hostname=sni or None)
    tls.sendall(f"GET /tls HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while chunk := tls.recv(4096):
        data += chunk
    return data.split(b"\r\n\r\n", 1)[1].decode()


def direct(address: str, port: str) -> str:
    with socket.create_connection((address, int(port)), timeout=5) as sock:
        sock.sendall(b"GET /direct HTTP/1.0\r\n\r\n")
        return sock.recv(4096).decode()


def main() -> None:
    mode, *args = sys.argv[1:]
    try:
        body = {"http": http, "https": https, "direct": direct}[mode](*args)
    except Exception as exc:
        print(f"FAIL {type(exc).__name__}: {exc}")
    else:
        print(f"OK {body}")


main()
