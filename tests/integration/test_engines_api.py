"""The verification API of a stage whose engines run in the engines function (``*_ENGINE=remote``), on the
embedded AWS, the function's handler called in-process (``DirectEngineInvoker``) and, for the faults, a
Lambda endpoint that answers too late (a real timeout of the real invoker).

A person's face check passes as with the in-process engines; an engine that does not answer is a 503
with ``Retry-After`` that counts no attempt, keeps the session, records no refusal and changes nothing.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chalicelib.adapters.engines.invoker import DirectEngineInvoker, EngineInvoker, LambdaEngineInvoker
from chalicelib.verification.domain.documents import DocumentKind
from tests.face_photos import FACES, local_face_engine_missing
from tests.integration.test_verification_api import (
    CARD_PORTRAIT,
    bucket,
    burst,
    call,
    card_read,
    consent_to_face_check,
    open_flow,
    s3,
    send_burst,
    start_sideways,
)
from tests.synthetic_documents import id_front, require_cjk_font
from tests.unit.test_engines_payloads import SlowLambda, lambda_client

if missing := local_face_engine_missing(CARD_PORTRAIT):
    pytest.skip(missing, allow_module_level=True)


@pytest.fixture
def person(token: Callable[..., str]) -> Callable[[str], dict[str, str]]:
    def headers(subject: str = "owner-13800138000") -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token('owner', subject=subject)}",
            "Content-Type": "application/json",
        }

    return headers


class Switchboard:
    """The engines function in-process, but for the operations sent to a function that answers late."""

    def __init__(self) -> None:
        self.direct = DirectEngineInvoker()
        self.late: dict[str, EngineInvoker] = {}

    def __call__(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self.late.get(str(payload["op"]), self.direct)(payload)


@pytest.fixture
def engines(monkeypatch: pytest.MonkeyPatch) -> Iterator[Switchboard]:
    from chalicelib.core import deps

    for kind in ("OCR", "FACE", "LIVENESS"):
        monkeypatch.setenv(f"CHEKA_{kind}_ENGINE", "remote")
    board = Switchboard()
    deps.reset()
    deps.use_engine_invoker(board)
    yield board
    deps.use_engine_invoker(None)
    deps.reset()


@pytest.fixture
def late_lambda() -> Iterator[LambdaEngineInvoker]:
    with SlowLambda(delay=1.5) as server:
        yield LambdaEngineInvoker(lambda_client(server.url, read_timeout=0.3), "cheka-test-engines")


def evidence_kinds(api: Any, auth: Callable[..., dict[str, str]], flow_id: str) -> list[str]:
    status, evidence = call(api, "get", f"/v1/flows/{flow_id}/evidence", auth("auditor"))
    if status == 404 and evidence["code"] == "flow.not_found":
        return []  # no entry yet: the evidence of a flow starts with its first check
    assert status == 200, evidence
    return [entry["kind"] for entry in evidence["entries"]]


def raw_send(
    api: Any, headers: dict[str, str], flow_id: str, session: dict[str, Any], frames: list[str]
) -> Any:
    from tests.liveness_frames import capture_times

    body = {
        "frames": frames,
        "nonce": session["challenge"]["nonce"],
        "timestamps_ms": capture_times(len(frames)),
    }
    path = f"/v1/flows/{flow_id}/liveness-sessions/{session['session_id']}/result"
    return api.http.post(path, headers=headers, body=json.dumps(body))


def test_the_whole_face_check_passes_with_every_engine_in_the_engines_function(
    engines: Switchboard, api: Any, person: Callable[..., dict[str, str]]
) -> None:
    from chalicelib.core import deps

    me = person()
    flow_id = card_read(api, me)
    session = start_sideways(api, me, flow_id)
    status, outcome = send_burst(api, me, flow_id, session, burst(session["challenge"]["direction"]))
    assert status == 200, outcome
    assert (outcome["passed"], outcome["attempts_left"]) == (True, 2)
    calls = engines.direct.calls
    for op in ("faces.detect", "ocr.read", "liveness.judge", "faces.compare", "index.bind", "index.search"):
        assert calls.get(op, 0) >= 1, (op, calls)
    assert type(deps.face_engine()).__name__ == "RemoteFaceEngine"


@pytest.mark.parametrize("late_op", ["liveness.judge", "faces.compare"])
def test_an_engine_timing_out_in_the_face_check_is_a_503_that_counts_no_attempt_and_keeps_the_session(
    late_op: str,
    engines: Switchboard,
    late_lambda: LambdaEngineInvoker,
    api: Any,
    person: Callable[..., dict[str, str]],
    auth: Callable[..., dict[str, str]],
) -> None:
    me = person()
    flow_id = card_read(api, me)
    session = start_sideways(api, me, flow_id)
    frames = burst(session["challenge"]["direction"])
    engines.late[late_op] = late_lambda
    response = raw_send(api, me, flow_id, session, frames)
    error = json.loads(response.body)
    assert (response.status_code, error["code"]) == (503, "engine.unavailable"), error
    assert response.headers["Retry-After"] == "10"
    assert error["details"]["cause"] == "timeout"
    assert "不计入" in error["message_zh"]
    # Nothing was counted or used: the same session is handed out again with every attempt left
    status, again = call(api, "post", f"/v1/flows/{flow_id}/liveness-sessions", me)
    assert (status, again["session_id"], again["attempts_left"]) == (201, session["session_id"], 3)
    assert call(api, "get", f"/v1/flows/{flow_id}", me)[1]["checks"]["face"] == "started"
    assert "face_compared" not in evidence_kinds(api, auth, flow_id)
    # and once the engine answers again, the same session passes and counts one attempt
    del engines.late[late_op]
    status, outcome = send_burst(api, me, flow_id, session, frames)
    assert status == 200, outcome
    assert (outcome["passed"], outcome["attempts_left"]) == (True, 2)


def test_ocr_timing_out_is_a_503_and_changes_nothing(
    engines: Switchboard,
    late_lambda: LambdaEngineInvoker,
    api: Any,
    person: Callable[..., dict[str, str]],
    auth: Callable[..., dict[str, str]],
) -> None:
    from tests.integration.test_verification_api import upload

    require_cjk_font()
    me = person()
    flow_id = open_flow(api, me)
    assert upload(api, me, flow_id, DocumentKind.ID_FRONT, id_front(portrait=FACES / CARD_PORTRAIT))[0] == 201
    before_flow = call(api, "get", f"/v1/flows/{flow_id}", me)[1]
    before_evidence = evidence_kinds(api, auth, flow_id)
    engines.late["ocr.read"] = late_lambda
    response = api.http.post(f"/v1/flows/{flow_id}/ocr/id_front", headers=me)
    assert (response.status_code, json.loads(response.body)["code"]) == (503, "engine.unavailable")
    assert response.headers["Retry-After"] == "10"
    assert call(api, "get", f"/v1/flows/{flow_id}", me)[1] == before_flow
    assert evidence_kinds(api, auth, flow_id) == before_evidence
    del engines.late["ocr.read"]
    assert call(api, "post", f"/v1/flows/{flow_id}/ocr/id_front", me)[0] == 200


def test_an_upload_whose_face_detection_times_out_is_not_refused_and_completes_later(
    engines: Switchboard,
    late_lambda: LambdaEngineInvoker,
    api: Any,
    person: Callable[..., dict[str, str]],
    auth: Callable[..., dict[str, str]],
) -> None:
    require_cjk_font()
    me = person()
    flow_id = open_flow(api, me)
    consent_to_face_check(api, me, flow_id)  # the ID front's portrait is face processing
    status, post = call(
        api, "post", f"/v1/flows/{flow_id}/uploads", me, {"kind": "id_front", "content_type": "image/jpeg"}
    )
    assert status == 201, post
    card = id_front(portrait=FACES / CARD_PORTRAIT)
    s3().put_object(Bucket=bucket(), Key=post["key"], Body=card, ContentType="image/jpeg")
    engines.late["faces.detect"] = late_lambda
    complete = {"kind": "id_front", "key": post["key"]}
    status, error = call(api, "post", f"/v1/flows/{flow_id}/documents", me, complete)
    assert (status, error["code"]) == (503, "engine.unavailable")
    assert "upload_refused" not in evidence_kinds(api, auth, flow_id)
    assert call(api, "get", f"/v1/flows/{flow_id}", me)[1]["documents"] == []
    assert s3().get_object(Bucket=bucket(), Key=post["key"])["Body"].read() == card  # kept for the retry
    del engines.late["faces.detect"]
    status, doc = call(api, "post", f"/v1/flows/{flow_id}/documents", me, complete)
    assert status == 201, doc
    assert call(api, "get", f"/v1/flows/{flow_id}", me)[1]["documents"] == ["id_front"]


def test_the_stages_invoker_calls_the_engines_function_with_its_timeout_and_no_botocore_retries(
    monkeypatch: pytest.MonkeyPatch, aws: None
) -> None:
    from chalicelib.core import deps

    monkeypatch.setenv("CHEKA_ENGINES_TIMEOUT_SECONDS", "7.5")
    deps.reset()
    invoker = deps.engine_invoker()
    assert isinstance(invoker, LambdaEngineInvoker)
    assert invoker.function_name == "cheka-test-engines"
    config = invoker._client.meta.config
    assert config.read_timeout == 7.5
    assert config.retries["total_max_attempts"] == 1


def test_frames_are_base64_in_the_request_as_the_api_received_them(
    engines: Switchboard, api: Any, person: Callable[..., dict[str, str]]
) -> None:
    me = person()
    flow_id = card_read(api, me)
    session = start_sideways(api, me, flow_id)
    frames = burst(session["challenge"]["direction"])
    seen: list[dict[str, Any]] = []

    def recording(payload: dict[str, Any]) -> dict[str, Any]:
        seen.append(payload)
        return engines.direct(payload)

    engines.late["liveness.judge"] = recording
    assert send_burst(api, me, flow_id, session, frames)[0] == 200
    sent = seen[0]["args"]
    assert [ref["b64"] for ref in sent["frames"]] == frames
    assert sent["challenge"]["direction"] == session["challenge"]["direction"]
    assert base64.b64decode(sent["frames"][0]["b64"]).startswith(b"\xff\xd8\xff")


#: The API of a deployed stage in a fresh interpreter: moto in-process, the engines reached over HTTP in
#: the test's process (the engines function's stand-in), the whole face check run through the API.
_API_PROCESS = """
import json, sys, urllib.request
from moto import mock_aws

engines_url, card_path, identity = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])


def invoker(payload):
    request = urllib.request.Request(engines_url + "/invoke", data=json.dumps(payload).encode())
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.loads(response.read())


with mock_aws():
    from chalice.test import Client

    from chalicelib.core import deps
    from chalicelib.core.auth import Role, issue_token
    from chalicelib.core.aws import client
    from chalicelib.core.settings import get_settings
    from chalicelib.local.bootstrap import create_resources

    settings = get_settings()
    create_resources(settings)
    deps.use_engine_invoker(invoker)
    from app import app

    token = issue_token(settings, "owner-13900139000", [Role("owner")])
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with Client(app) as api:
        def call(method, path, body=None):
            kwargs = {"headers": headers}
            if body is not None:
                kwargs["body"] = json.dumps(body)
            response = getattr(api.http, method)(path, **kwargs)
            assert response.status_code < 300, (path, response.status_code, response.body)
            return json.loads(response.body) if response.body else None

        flow_id = call("post", "/v1/flows", {"purpose": "registration"})["flow_id"]
        call("put", f"/v1/flows/{flow_id}/identity", identity)
        doc = next(d for d in call("get", "/v1/consents")["documents"] if d["kind"] == "biometric_consent")
        consent = {"version": doc["version"], "sha256": doc["sha256"], "client": {"ua": "test"}}
        call("post", f"/v1/flows/{flow_id}/biometric-consent", consent)
        kind = {"kind": "id_front", "content_type": "image/jpeg"}
        post = call("post", f"/v1/flows/{flow_id}/uploads", kind)
        card = open(card_path, "rb").read()
        client("s3").put_object(Bucket=settings.documents_bucket, Key=post["key"], Body=card)
        call("post", f"/v1/flows/{flow_id}/documents", {"kind": "id_front", "key": post["key"]})
        call("post", f"/v1/flows/{flow_id}/ocr/id_front")
        session = call("post", f"/v1/flows/{flow_id}/liveness-sessions")
        direction = session["challenge"]["direction"]
        with urllib.request.urlopen(f"{engines_url}/burst/{direction}", timeout=300) as response:
            frames = json.loads(response.read())
        times = [1_700_000_000_000 + 450 * i for i in range(len(frames))]
        body = {"frames": frames, "nonce": session["challenge"]["nonce"], "timestamps_ms": times}
        outcome = call("post", f"/v1/flows/{flow_id}/liveness-sessions/{session['session_id']}/result", body)
    heavy = [m for m in ("numpy", "dlib", "onnxruntime", "cv2", "rapidocr_onnxruntime") if m in sys.modules]
    print(json.dumps({"outcome": outcome, "loaded": heavy}))
"""


class EnginesOverHttp:
    """The engines function's handler on a free loopback port (``POST /invoke``), and bursts of frames
    for a challenge's direction (``GET /burst/<direction>``)."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from chalicelib.engines.handler import Engines, dispatch

        engines = Engines()
        self.ops: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.ops.append(request["op"])
                self._reply(dispatch(engines, request))

            def do_GET(self) -> None:
                self._reply(burst(self.path.rsplit("/", 1)[1]))

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> EnginesOverHttp:
        import threading

        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_deployed_stages_api_runs_the_whole_face_check_without_loading_any_engine_library(
    identity_authority: Any, tmp_path: Any
) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    from chalicelib.core.stages import stage_environment
    from tests.synthetic_documents import PERSON_ADDRESS, PERSON_ID_NUMBER, PERSON_NAME

    require_cjk_font()
    card = tmp_path / "id_front.jpg"
    card.write_bytes(id_front(portrait=FACES / CARD_PORTRAIT))
    identity = {
        "id_type": "resident_id",
        "id_number": PERSON_ID_NUMBER,
        "name": PERSON_NAME,
        "address": PERSON_ADDRESS,
    }
    # The prod stage's engine choices (and nothing else of prod: the test stage's embedded AWS and keys)
    declared = stage_environment("prod")
    chosen = {
        k: v for k, v in declared.items() if k.endswith("_ENGINE") or k == "CHEKA_ACCEPT_LOCAL_LIVENESS_RISK"
    }
    assert (
        chosen["CHEKA_OCR_ENGINE"]
        == chosen["CHEKA_FACE_ENGINE"]
        == chosen["CHEKA_LIVENESS_ENGINE"]
        == "remote"
    )
    env = {
        **os.environ,
        **chosen,
        "CHEKA_STAGE": "test",
        "CHEKA_FACE_DEDUP": "false",
        "CHEKA_LOG_LEVEL": "WARNING",
    }
    project = Path(__file__).resolve().parents[2]
    with EnginesOverHttp() as engines:
        done = subprocess.run(
            [sys.executable, "-c", _API_PROCESS, engines.url, str(card), json.dumps(identity)],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["loaded"] == []
    assert (result["outcome"]["passed"], result["outcome"]["attempts_left"]) == (True, 2)
    assert {"ocr.read", "faces.detect", "liveness.judge", "faces.compare"} <= set(engines.ops)
