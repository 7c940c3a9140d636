"""Local receivers for the alert channels: a webhook endpoint and an SMTP server."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller


class WebhookReceiver:
    """Collects JSON POSTs; `fail_next` answers 500 that many times first (a channel down);
    `slow_next` answers that many only after `slow_seconds` (a slow receiver the sender gives up
    on, though the message did arrive). `keys` holds every request's Idempotency-Key."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.keys: list[str | None] = []
        self.fail_next = 0
        self.slow_next = 0
        self.slow_seconds = 0.0
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.arrived:
                    receiver.keys.append(self.headers.get("Idempotency-Key"))
                    receiver.arrived.notify_all()
                if receiver.slow_next > 0:
                    receiver.slow_next -= 1
                    with receiver.arrived:
                        receiver.received.append(json.loads(body))
                    time.sleep(receiver.slow_seconds)  # the sender has timed out by now
                    try:
                        self.send_response(200)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                    except OSError:
                        pass
                    return
                if receiver.fail_next > 0:
                    receiver.fail_next -= 1
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with receiver.arrived:
                    receiver.received.append(json.loads(body))
                    receiver.arrived.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def texts(self) -> list[str]:
        return [r["text"] for r in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class MailReceiver:
    def __init__(self) -> None:
        self.messages: list[str] = []
        receiver = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                receiver.messages.append(envelope.content.decode("utf-8", "replace"))
                return "250 OK"

        with socket.socket() as probe:  # the controller cannot start on port 0
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()
