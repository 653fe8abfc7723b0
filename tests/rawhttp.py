"""Raw HTTP/1.1 over a socket, for requests ``requests`` will not send (bad framing, odd bytes)."""

from __future__ import annotations

import base64
import socket
import time

TIMEOUT = 60.0
MAX_RESPONSE = 4 * 1024 * 1024


def basic(login: str, password: str) -> str:
    """An ``Authorization`` value for Basic credentials."""
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


def head(method: str, target: str, headers: dict[str, str]) -> bytes:
    """The request line and headers (latin-1, as they go on the wire)."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def exchange(port: int, data: bytes, timeout: float = TIMEOUT) -> tuple[int, bytes]:
    """Send ``data``, read the answer until the server closes: (status, whole response)."""
    deadline = time.monotonic() + timeout
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        while len(answer) < MAX_RESPONSE and time.monotonic() < deadline:
            piece = sock.recv(65536)
            if not piece:
                break
            answer += piece
    status_line = answer.split(b"\r\n", 1)[0].split()
    assert len(status_line) >= 2, answer[:200]
    return int(status_line[1]), answer


def request(
    port: int, method: str, target: str, body: bytes = b"", /, **headers: str
) -> tuple[int, bytes]:
    """One request with a Content-Length body (unless a Content-Length is given)."""
    headers = {name.replace("_", "-"): value for name, value in headers.items()}
    headers.setdefault("Content-Length", str(len(body)))
    return exchange(port, head(method, target, headers) + body)
