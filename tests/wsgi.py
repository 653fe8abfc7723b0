"""Call Radicale's WSGI application in-process, as a server would."""

from __future__ import annotations

import base64
import io
import sys
from typing import Any

from radicale.app import Application


def make_environ(method: str, path: str, data: bytes, authorization: str) -> dict[str, Any]:
    """The WSGI environ of one request as Radicale's own server makes it."""
    return {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "5232",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.input": io.BytesIO(data),
        "CONTENT_LENGTH": str(len(data)),
        "HTTP_AUTHORIZATION": authorization,
    }


class Client:
    """Calls the WSGI application directly, as a server would."""

    def __init__(self, app: Application, login: str, password: str) -> None:
        self.app = app
        self.auth = "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()

    def __call__(
        self, method: str, path: str, body: str = "", **headers: str
    ) -> tuple[int, dict[str, str], str]:
        environ = make_environ(method, path, body.encode(), self.auth)
        for name, value in headers.items():
            key = name.upper().replace("-", "_")
            environ[key if key == "CONTENT_TYPE" else "HTTP_" + key] = value
        status: list[str] = []
        response_headers: list[tuple[str, str]] = []

        def start_response(line: str, header_list: list[tuple[str, str]]) -> None:
            status.append(line)
            response_headers.extend(header_list)

        answer = b"".join(self.app(environ, start_response))
        return int(status[0].split()[0]), dict(response_headers), answer.decode()
