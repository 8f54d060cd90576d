"""Small misbehaving OpenAI-compatible servers (stdlib http.server on loopback) for failure paths.

One server answers every mode; the teacher picks one through its base_url: `http://host:port/<mode>/v1`.
They are real servers on real sockets, so the engine goes through httpx's real error paths.

Modes (the `seed` of a request varies where it matters: sample j of a teacher sends seed + j):
  ok         200 with a completion
  echo500    500 whose body echoes the Authorization header (retried)
  echo401    401 echoing it (not retried)
  cut        500 whose body echoes the header with the key cut at `seed` characters (a server that
             truncates what it echoes), or placed to straddle the engine's 300-character cut
  short      200 that declares a longer body than it sends, echoing the header, then hangs up
  slow       sleeps 2 s before answering (the teacher's timeout is shorter)
  echo200    200 whose completion text echoes the header (a model output that contains the key)
  badjson    200 with a body that is not JSON and echoes the header
  flaky      fails (500) while `Fakes.fail_next` > 0, counting it down; then as `ok`
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    server_version = "fake/1"

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        mode = self.path.strip("/").split("/")[0]
        auth = self.headers.get("Authorization", "")
        seed = int(body.get("seed") or 0)
        self.server.fakes.requests.append((mode, seed))
        getattr(self, f"_{mode}")(auth, seed)

    def _send(self, status: int, text: str, declared: int | None = None):
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(declared if declared is not None else len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _ok(self, auth, seed, text="The answer is \\boxed{5}."):
        self._send(200, json.dumps({"model": "fake", "choices": [{"message": {"content": text},
                                                                   "finish_reason": "stop"}],
                                    "usage": {"prompt_tokens": 3, "completion_tokens": 4}}))

    def _echo500(self, auth, seed):
        self._send(500, json.dumps({"error": f"internal error; your request had Authorization: {auth}"}))

    def _echo401(self, auth, seed):
        self._send(401, f"denied: {auth} is not a valid credential")

    def _cut(self, auth, seed):
        key = auth.removeprefix("Bearer ")
        if seed % 2:  # the key itself cut by the server after `seed` characters
            text = f"bad key {key[:seed]}"
        else:  # the key placed so the engine's 300-character cut splits it `seed` characters in
            text = "x" * (300 - seed) + key + " trailing text"
        self._send(500, text)

    def _short(self, auth, seed):
        self._send(200, f'{{"error": "{auth}", "padding": "', declared=10_000)
        self.close_connection = True

    def _slow(self, auth, seed):
        time.sleep(2)
        self._ok(auth, seed)

    def _echo200(self, auth, seed):
        self._ok(auth, seed, text=f"I was called with {auth}. The answer is \\boxed{{5}}.")

    def _badjson(self, auth, seed):
        self._send(200, f"<html>proxy error for {auth}</html>")

    def _flaky(self, auth, seed):
        with self.server.fakes.lock:
            fail = self.server.fakes.fail_next > 0
            self.server.fakes.fail_next -= fail
        if fail:
            self._send(500, "temporarily unavailable")
        else:
            self._ok(auth, seed)


class Fakes:
    """A running server: `url(mode)` is a teacher base_url; `requests` lists (mode, seed) received."""

    def __init__(self):
        self.requests: list[tuple[str, int]] = []
        self.fail_next = 0
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.fakes = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{mode}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def dead_url() -> str:
    """A loopback port nobody listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
