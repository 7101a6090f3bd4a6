"""A local fake of Tencent Cloud FaceID's HTTP API (the JSON POST the official SDK sends, TC3-signed),
for the SDK to be pointed at: citizens with a portrait label, outage modes, and every request it saw.

It checks what the real API checks first: the ``TC3-HMAC-SHA256`` signature over the canonical request
with the configured secret key (an ``AuthFailure.SignatureFailure`` error otherwise), the action and
the version. Portrait similarity is decided by the test: ``similarity[id_number]``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET_ID = "AKIDfakefakefakefake"
SECRET_KEY = "fake-secret-key-for-the-local-fake"


@dataclass
class FakeFaceId:
    citizens: dict[str, str] = field(default_factory=dict)  # id number → name
    similarity: dict[str, float] = field(default_factory=dict)  # id number → Sim
    phones: dict[str, str] = field(default_factory=dict)  # id number → the phone a carrier holds
    #: Phone numbers whose range the carriers do not check (PhoneVerification Result ``-13``).
    unchecked_phones: set[str] = field(default_factory=set)
    #: None, "internal_error" (provider error), "http_502", "slow" (answers after ``slow_seconds``).
    mode: str | None = None
    slow_seconds: float = 3.0
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> FakeFaceId:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, doc = fake.handle(dict(self.headers.items()), body)
                if status == 0:
                    self.close_connection = True
                    return
                data = json.dumps(doc).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except ConnectionError:
                    self.close_connection = True

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # ------------------------------------------------------------------ the API

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        request_id = str(uuid.uuid4())
        headers = {k.lower(): v for k, v in headers.items()}
        action = headers.get("x-tc-action", "")
        if not self._signed(headers, body):
            return 200, _error("AuthFailure.SignatureFailure", "bad signature", request_id)
        if headers.get("x-tc-version") != "2018-03-01":
            return 200, _error("InvalidParameter", "version", request_id)
        params = json.loads(body or b"{}")
        self.requests.append((action, params))
        if self.mode == "http_502":
            return 502, {"message": "bad gateway"}
        if self.mode == "slow":
            time.sleep(self.slow_seconds)
        if self.mode == "internal_error":
            return 200, _error("InternalError", "the provider failed", request_id)
        number, name = str(params.get("IdCard", "")), str(params.get("Name", ""))
        known = self.citizens.get(number)
        if action == "IdCardVerification":
            result = "-5" if known is None else ("0" if known == name else "-1")
            return 200, {"Response": {"Result": result, "Description": "", "RequestId": request_id}}
        if action == "PhoneVerification":
            phone = str(params.get("Phone", ""))
            if phone in self.unchecked_phones:
                result = "-13"
            elif known is None or number not in self.phones:
                result = "-9"
            else:
                result = "0" if known == name and self.phones[number] == phone else "-4"
            return 200, {
                "Response": {"Result": result, "Description": "", "Isp": "移动", "RequestId": request_id}
            }
        if action == "ImageRecognitionV2":
            if known is None:
                return 200, _error("FailedOperation.IdNoExistSystem", "no record", request_id)
            if known != name:
                return 200, _error("FailedOperation.IdNameMisMatch", "name", request_id)
            sim = self.similarity.get(number, 0.0)
            return 200, {
                "Response": {"Sim": sim, "Result": "Success", "Description": "", "RequestId": request_id}
            }
        return 200, _error("InvalidAction", action, request_id)

    @staticmethod
    def _signed(headers: dict[str, str], body: bytes) -> bool:
        auth = headers.get("authorization", "")
        try:
            credential = auth.split("Credential=")[1].split(",")[0]
            signature = auth.split("Signature=")[1].strip()
            secret_id, day, service, _ = credential.split("/")
        except (IndexError, ValueError):
            return False
        if secret_id != SECRET_ID:
            return False
        canonical = "\n".join(
            [
                "POST",
                "/",
                "",
                f"content-type:{headers.get('content-type', '')}\nhost:{headers.get('host', '')}\n",
                "content-type;host",
                hashlib.sha256(body).hexdigest(),
            ]
        )
        scope = f"{day}/{service}/tc3_request"
        to_sign = "\n".join(
            [
                "TC3-HMAC-SHA256",
                headers.get("x-tc-timestamp", ""),
                scope,
                hashlib.sha256(canonical.encode()).hexdigest(),
            ]
        )

        def sign(key: bytes, msg: str) -> bytes:
            return hmac.new(key, msg.encode(), hashlib.sha256).digest()

        key = sign(sign(sign(("TC3" + SECRET_KEY).encode(), day), service), "tc3_request")
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature)


def _error(code: str, message: str, request_id: str) -> dict[str, Any]:
    return {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": request_id}}
