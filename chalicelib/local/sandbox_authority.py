"""The sandbox identity authority: a small local HTTP service standing in for the citizen database
behind a real-name provider (``chalicelib.verification.domain.authority``).

It holds synthetic citizens (name, resident ID number, validity, portrait JPEG, the mobile number a
carrier holds in their name) in memory — a restart
forgets them — and answers like a provider does:

- ``POST /v1/identity/verify`` ``{name, id_type, id_number, valid_until?}`` → ``{result, reference,
  version}``: ``match``, ``no_match`` (the number exists, the name or validity differs) or
  ``not_found``;
- ``POST /v1/portrait/compare`` ``{name, id_number, live_jpeg}`` (base64) → ``{result, similarity,
  reference, version}``: the live face against the citizen's portrait with the local dlib engine
  (``adapters/faces/local.py``) at its calibrated threshold;
- ``POST /v1/phone/verify`` ``{name, id_type, id_number, phone}`` → ``{result, reference, version}``
  (运营商三要素): ``match`` when the phone is on record for that citizen under that name, ``no_match``
  when another phone (or name) is, ``not_found`` when the citizen is unknown or has no phone on record
  (as a carrier answers);
- ``POST /_sandbox/citizens`` ``{name, id_number, valid_until?, portrait?, phone?}`` registers a citizen (what
  ``cheka demo-id-card`` calls), ``GET /_sandbox/citizens`` counts them; loopback only.

Fault injection, for tests and benchmarks, three ways: at start (settings
``authority_sandbox_faults``, e.g. ``latency=2,failure_rate=0.5,wrong_rate=0.1,down``), at run time
(``POST /_sandbox/faults`` with a JSON object of the same names, or ``faults`` in-process), and per
request (header ``X-Sandbox-Fault: slow | down | error | wrong``). ``down`` drops connections
unanswered, ``error``/``failure_rate`` answer 503, ``slow``/``latency`` wait before answering,
``wrong``/``wrong_rate`` turn a match into ``no_match`` and the other answers into ``match``.

    python -m chalicelib.local.sandbox_authority --port 8200
"""

from __future__ import annotations

import argparse
import base64
import binascii
import itertools
import json
import logging
import random
import threading
import time
from dataclasses import asdict, dataclass
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from chalicelib.kernel.errors import DomainError
from chalicelib.kernel.validators import validate
from chalicelib.local.serving import serve_until_signalled

log = logging.getLogger("cheka.sandbox_authority")

VERSION = "cheka-sandbox-authority/1.0"
_MAX_BODY = 8 * 1024 * 1024
#: Seconds ``slow`` (the per-request fault) waits.
SLOW_SECONDS = 5.0


@dataclass
class AuthorityFaults:
    """Injected faults; plain attributes, change them at any time."""

    latency_seconds: float = 0.0
    failure_rate: float = 0.0  # share of requests answered 503
    wrong_rate: float = 0.0  # share of answers turned wrong
    down: bool = False

    @classmethod
    def parse(cls, spec: str) -> AuthorityFaults:
        """``latency=2,failure_rate=0.5,wrong_rate=0.1,down`` (any subset, in any order)."""
        faults = cls()
        for part in (p.strip() for p in spec.split(",") if p.strip()):
            name, _, value = part.partition("=")
            faults.set(name.strip(), value.strip() or True)
        return faults

    def set(self, name: str, value: object) -> None:
        if name in ("latency_seconds", "latency"):
            self.latency_seconds = float(str(value))
        elif name in ("failure_rate", "wrong_rate"):
            setattr(self, name, float(str(value)))
        elif name == "down":
            self.down = value is True or str(value).lower() in ("1", "true", "yes")
        else:
            raise ValueError(f"unknown fault {name!r}")


@dataclass(frozen=True)
class Citizen:
    name: str
    id_number: str
    valid_until: date | None = None  # None: 长期
    portrait: bytes | None = None
    phone: str | None = None  # the mobile number a carrier holds in the citizen's name


class SandboxAuthority:
    """The citizens and the answers; ``start()`` serves them over HTTP (port 0: an ephemeral one)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: AuthorityFaults | None = None,
        seed: int | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self.faults = faults or AuthorityFaults()
        self._random = random.Random(seed)  # a simulation, not security: seedable
        self._lock = threading.Lock()
        self._citizens: dict[str, Citizen] = {}
        self._refs = itertools.count(1)
        self._engine: Any = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the sandbox authority is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self) -> SandboxAuthority:
        server = _Server((self._host, self._port), _Handler)
        server.authority = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SandboxAuthority:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ citizens

    def register(self, citizen: Citizen) -> None:
        number = validate("resident_id", citizen.id_number, field="id_number").value
        phone = validate("mobile", citizen.phone, field="phone").value if citizen.phone else None
        with self._lock:
            self._citizens[number] = Citizen(
                name=citizen.name.strip(),
                id_number=number,
                valid_until=citizen.valid_until,
                portrait=citizen.portrait,
                phone=phone,
            )

    def forget(self, id_number: str) -> None:
        with self._lock:
            self._citizens.pop(id_number.strip().upper(), None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._citizens)

    def _citizen(self, id_number: str) -> Citizen | None:
        with self._lock:
            return self._citizens.get(str(id_number).strip().upper())

    def _reference(self) -> str:
        return f"sbx-{next(self._refs):08d}"

    def _wrong(self, result: str, forced: bool) -> str:
        if forced or (self.faults.wrong_rate > 0 and self._random.random() < self.faults.wrong_rate):
            return "no_match" if result == "match" else "match"
        return result

    # ------------------------------------------------------------------ answers

    def verify(self, doc: dict[str, Any], wrong: bool = False) -> dict[str, Any]:
        citizen = self._citizen(str(doc.get("id_number", "")))
        if doc.get("id_type", "resident_id") != "resident_id" or citizen is None:
            result = "not_found"
        elif citizen.name != str(doc.get("name", "")).strip():
            result = "no_match"
        elif doc.get("valid_until") and citizen.valid_until is not None:
            result = "match" if doc["valid_until"] == citizen.valid_until.isoformat() else "no_match"
        else:
            result = "match"
        return {"result": self._wrong(result, wrong), "reference": self._reference(), "version": VERSION}

    def verify_phone(self, doc: dict[str, Any], wrong: bool = False) -> dict[str, Any]:
        """运营商三要素: the citizen's name, number and the phone on record in their name."""
        citizen = self._citizen(str(doc.get("id_number", "")))
        reference = self._reference()
        if doc.get("id_type", "resident_id") != "resident_id" or citizen is None:
            return {"result": "not_found", "reference": reference, "version": VERSION}
        if citizen.phone is None:
            return {"result": "not_found", "code": "no_phone", "reference": reference, "version": VERSION}
        try:
            phone = validate("mobile", str(doc.get("phone", "")), field="phone").value
        except DomainError:
            phone = None
        same = citizen.name == str(doc.get("name", "")).strip() and phone == citizen.phone
        result = "match" if same else "no_match"
        return {"result": self._wrong(result, wrong), "reference": reference, "version": VERSION}

    def compare(self, doc: dict[str, Any], wrong: bool = False) -> dict[str, Any]:
        citizen = self._citizen(str(doc.get("id_number", "")))
        reference = self._reference()
        if citizen is None or citizen.name != str(doc.get("name", "")).strip():
            return {"result": "not_found", "reference": reference, "version": VERSION}
        if citizen.portrait is None:
            return {"result": "not_found", "code": "no_portrait", "reference": reference, "version": VERSION}
        live = base64.b64decode(str(doc.get("live_jpeg", "")), validate=True)
        engine = self._face_engine()
        try:
            comparison = engine.compare(citizen.portrait, live)
        except DomainError as err:
            return {"result": "no_match", "code": err.code, "reference": reference, "version": VERSION}
        result = "match" if comparison.similarity >= engine.recommended_threshold else "no_match"
        return {
            "result": self._wrong(result, wrong),
            "similarity": round(comparison.similarity, 2),
            "reference": reference,
            "version": VERSION,
        }

    def _face_engine(self) -> Any:
        with self._lock:
            if self._engine is None:
                from chalicelib.adapters.faces.local import LocalFaceEngine

                self._engine = LocalFaceEngine()
            return self._engine


# --------------------------------------------------------------------------- HTTP


#: The provider endpoints and the ``SandboxAuthority`` method answering each.
_ANSWERS = {
    "/v1/identity/verify": "verify",
    "/v1/portrait/compare": "compare",
    "/v1/phone/verify": "verify_phone",
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    authority: SandboxAuthority


def _error(code: str, message: str) -> bytes:
    return json.dumps({"code": code, "message": message}).encode()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = VERSION

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _reply(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except ConnectionError:
            self.close_connection = True

    def _json(self) -> dict[str, Any] | None:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._reply(411, _error("length_required", "Content-Length is required"))
            return None
        if length < 0 or length > _MAX_BODY:
            self.close_connection = True
            self._reply(413, _error("too_large", f"bodies are limited to {_MAX_BODY} bytes"))
            return None
        try:
            doc = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            self._reply(400, _error("malformed", "expected a JSON object"))
            return None
        return doc

    def _loopback(self) -> bool:
        if self.client_address[0] in ("127.0.0.1", "::1"):
            return True
        self._reply(403, _error("forbidden", "the sandbox's admin endpoints answer loopback only"))
        return False

    def _faulted(self) -> tuple[bool, bool]:
        """Apply the faults to a provider request: (answered already, answer wrong)."""
        authority = self.server.authority
        faults = authority.faults
        asked = self.headers.get("X-Sandbox-Fault", "").strip().lower()
        if faults.down or asked == "down":
            self.close_connection = True
            return True, False
        if faults.latency_seconds > 0:
            time.sleep(faults.latency_seconds)
        if asked == "slow":
            time.sleep(SLOW_SECONDS)
        if asked == "error" or (faults.failure_rate > 0 and authority._random.random() < faults.failure_rate):
            self.close_connection = True
            self._reply(503, _error("unavailable", "injected failure"), {"Retry-After": "1"})
            return True, False
        return False, asked == "wrong"

    def do_GET(self) -> None:
        authority = self.server.authority
        route = urlsplit(self.path).path
        if route == "/health":
            self._reply(200, json.dumps({"status": "ok", "version": VERSION}).encode())
        elif route == "/_sandbox/faults":
            self._reply(200, json.dumps(asdict(authority.faults)).encode())
        elif route == "/_sandbox/citizens" and self._loopback():
            self._reply(200, json.dumps({"citizens": len(authority)}).encode())
        elif route != "/_sandbox/citizens":
            self._reply(404, _error("not_found", "no such endpoint"))

    def do_POST(self) -> None:
        authority = self.server.authority
        route = urlsplit(self.path).path
        if route in ("/_sandbox/faults", "/_sandbox/citizens"):
            if not self._loopback():
                return
            doc = self._json()
            if doc is None:
                return
            try:
                if route == "/_sandbox/faults":
                    for name, value in doc.items():
                        authority.faults.set(name, value)
                    self._reply(200, json.dumps(asdict(authority.faults)).encode())
                    return
                portrait = doc.get("portrait")
                until = doc.get("valid_until")
                phone = doc.get("phone")
                authority.register(
                    Citizen(
                        name=str(doc["name"]),
                        id_number=str(doc["id_number"]),
                        valid_until=date.fromisoformat(until) if until else None,
                        portrait=base64.b64decode(portrait, validate=True) if portrait else None,
                        phone=str(phone) if phone else None,
                    )
                )
            except (KeyError, ValueError, TypeError, binascii.Error, DomainError) as err:
                self._reply(400, _error("malformed", f"cannot take that: {type(err).__name__}"))
                return
            self._reply(201, json.dumps({"registered": True, "citizens": len(authority)}).encode())
            return
        if route not in _ANSWERS:
            self._reply(404, _error("not_found", "no such endpoint"))
            return
        answered, wrong = self._faulted()
        if answered:
            return
        doc = self._json()
        if doc is None:
            return
        try:
            answer = getattr(authority, _ANSWERS[route])(doc, wrong)
        except (ValueError, binascii.Error):
            self._reply(400, _error("malformed", "live_jpeg must be base64 of a JPEG"))
            return
        except Exception:
            log.exception("sandbox authority failed")
            self._reply(500, _error("internal", "the sandbox failed"))
            return
        self._reply(200, json.dumps(answer).encode())


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> None:
    from chalicelib.core.settings import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(description="The sandbox identity authority (synthetic citizens).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=settings.authority_port)
    parser.add_argument(
        "--faults",
        default=settings.authority_sandbox_faults,
        help="e.g. latency=2,failure_rate=0.5,wrong_rate=0.1,down",
    )
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(message)s")
    authority = SandboxAuthority(
        host=args.host, port=args.port, faults=AuthorityFaults.parse(args.faults), seed=args.seed
    ).start()
    print(f"sandbox identity authority on {authority.url}", flush=True)
    serve_until_signalled(authority.stop)


if __name__ == "__main__":
    main()
