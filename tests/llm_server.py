"""A scriptable fake OpenAI chat-completions server for tests (real HTTP on 127.0.0.1, stdlib only).

``FakeLLMServer(behaviour)`` where ``behaviour(body, attempt) -> action`` picks, per request, one of
``"ok"``, ``"429"`` (with ``Retry-After: 0``), ``"500"``, ``"hang"`` (sleeps ``hang_seconds`` then
answers), ``"badjson"``, ``"nochoices"``, ``"empty"``, ``"html"``. ``attempt`` counts earlier requests
with the same user prompt. Every request's JSON body and headers (names lower-cased) are recorded.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ACTIONS = ("ok", "429", "500", "hang", "badjson", "nochoices", "empty", "html")


def user_message(body: dict) -> str:
    """The user prompt of a chat-completions request body."""
    return next((m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user"), "")


def reply_text(body: dict) -> str:
    """What an ``ok`` answer says: derived from the prompt's first line, so tests can check the mapping."""
    return "Generated: " + user_message(body).splitlines()[0]


class _Server(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True


class FakeLLMServer:
    def __init__(self, behaviour=None, hang_seconds: float = 1.5, delay: float = 0.0):
        self.behaviour = behaviour or (lambda body, attempt: "ok")
        self.hang_seconds = hang_seconds
        self.delay = delay
        self.requests: list[dict] = []  # {"path", "headers", "body", "action"}
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def __enter__(self) -> "FakeLLMServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _decide(self, path: str, headers: dict, raw: bytes) -> tuple[str, dict]:
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        with self._lock:
            prompt = user_message(body)
            attempt = self._attempts.get(prompt, 0)
            self._attempts[prompt] = attempt + 1
            action = self.behaviour(body, attempt)
            self.requests.append({"path": path, "headers": headers, "body": body, "action": action})
        return action, body

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                action, body = server._decide(self.path, {k.lower(): v for k, v in self.headers.items()}, raw)
                if server.delay:
                    time.sleep(server.delay)
                try:
                    self._respond(action, body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout)

            def _send(self, status: int, payload: bytes, content_type="application/json", headers=None):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def _respond(self, action: str, body: dict):
                if action == "429":
                    error = {"error": {"message": "rate limited", "type": "rate_limit"}}
                    return self._send(429, json.dumps(error).encode(), headers={"Retry-After": "0"})
                if action == "500":
                    return self._send(500, b'{"error": {"message": "boom"}}')
                if action == "badjson":
                    return self._send(200, b'{"id": "x", "choices": [')
                if action == "html":
                    return self._send(200, b"<html>gateway</html>", content_type="text/html")
                if action == "nochoices":
                    return self._send(200, json.dumps({"id": "x", "object": "chat.completion"}).encode())
                if action == "hang":
                    time.sleep(server.hang_seconds)
                content = "" if action == "empty" else reply_text(body)
                payload = {
                    "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", "test"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
                }
                return self._send(200, json.dumps(payload).encode())

        return Handler
