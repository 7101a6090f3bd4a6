"""The engines function's payloads and the remote adapters' plumbing, without models or AWS.

Values round-trip through JSON; domain errors come back as the same kind with the same code, field and
details; large images are staged and always removed; the Lambda invoker turns every way of not answering
into ``engine.unavailable`` and tries again only what a second run cannot change.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest

from chalicelib.adapters.engines import codec
from chalicelib.adapters.engines.invoker import LambdaEngineInvoker
from chalicelib.adapters.engines.remote import EngineClient, RemoteFaceEngine, RemoteOcrEngine
from chalicelib.adapters.engines.staging import ENGINE_IO_PREFIX, pack
from chalicelib.kernel.errors import Conflict, DomainError, InvalidField, PayloadTooLarge
from chalicelib.verification.domain.authority import ServiceUnavailable
from chalicelib.verification.domain.engines import EngineUnavailable
from chalicelib.verification.domain.faces import (
    DetectedFace,
    FaceBox,
    FaceComparison,
    FaceEmbedding,
    no_face,
)
from chalicelib.verification.domain.liveness import LivenessVerdict, frame_too_large, not_finished
from chalicelib.verification.domain.readings import TextLine
from chalicelib.verification.ports import IndexedFace

FACE = DetectedFace(
    box=FaceBox(left=3, top=4, width=50, height=60),
    size_px=50,
    relative_size=0.25,
    yaw=-3.5,
    pitch=2.0,
    roll=0.1,
    confidence=1.25,
)


def through_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


# -- values ------------------------------------------------------------------------------------------------


def test_text_lines_faces_comparisons_and_embeddings_round_trip_through_json() -> None:
    lines = [
        TextLine(text="姓名 王小明", confidence=0.98, box=((1.0, 2.0), (3.0, 2.0), (3.0, 4.0), (1.0, 4.0)))
    ]
    lines.append(TextLine(text="no box", confidence=0.5))
    assert codec.lines_from_json(through_json(codec.lines_to_json(lines))) == lines
    assert codec.faces_from_json(through_json(codec.faces_to_json([FACE]))) == [FACE]
    comparison = FaceComparison(similarity=71.25, engine="dlib-resnet", engine_version="20.0.1")
    assert codec.comparison_from_json(through_json(codec.comparison_to_json(comparison))) == comparison
    embedding = FaceEmbedding(face=FACE, vector=(0.125, -0.5, 0.0))
    assert codec.embedding_from_json(through_json(codec.embedding_to_json(embedding))) == embedding
    found = [IndexedFace(template_id="f1", person_hash="h1", score=88.5)]
    assert codec.indexed_from_json(through_json(codec.indexed_to_json(found))) == found


def test_a_verdict_round_trips_with_its_reference_image_which_a_plain_dump_leaves_out() -> None:
    verdict = LivenessVerdict(
        live=True,
        confidence=100,
        engine="local-head-turn",
        engine_version="head-turn-2/dlib-resnet-20.0.1",
        reasons=[],
        frames=4,
        details={"per_frame": [{"yaw": 1.5}], "timing": {"ok": True}},
        reference_image=b"\xff\xd8\xff jpeg bytes",
    )
    assert "reference_image" not in verdict.model_dump()
    back = codec.verdict_from_json(through_json(codec.verdict_to_json(verdict)))
    assert back == verdict
    assert back.reference_image == verdict.reference_image
    bare = verdict.model_copy(
        update={"reference_image": None, "live": False, "reasons": ["liveness.no_face"]}
    )
    assert codec.verdict_from_json(through_json(codec.verdict_to_json(bare))).reference_image is None


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (no_face(image="b"), InvalidField),
        (frame_too_large(2, 2_000_000), PayloadTooLarge),
        (not_finished("IN_PROGRESS"), Conflict),
        (
            ServiceUnavailable("x.down", "不可用", "down", details={"retry_after_seconds": 3}),
            ServiceUnavailable,
        ),
    ],
)
def test_a_domain_error_comes_back_as_the_same_kind_with_its_code_field_and_details(
    error: DomainError, kind: type[DomainError]
) -> None:
    back = codec.error_from_json(through_json(codec.error_to_json(error)))
    assert type(back) is kind
    assert back.status == error.status
    assert back.to_dict() == error.to_dict()


def test_an_error_of_a_kind_the_api_does_not_know_comes_back_by_its_http_status() -> None:
    class EngineRefused(DomainError):
        status = 503

    back = codec.error_from_json(
        through_json(codec.error_to_json(EngineRefused("config.x", "配置", "config")))
    )
    assert isinstance(back, ServiceUnavailable)
    assert (back.status, back.code) == (503, "config.x")


# -- staging -----------------------------------------------------------------------------------------------


class MemoryStager:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.deleted: list[str] = []

    def put(self, key: str, body: bytes, content_type: str) -> None:
        self.objects[key] = body

    def get(self, key: str, max_bytes: int) -> bytes:
        return self.objects[key]

    def delete(self, key: str) -> None:
        self.deleted.append(key)
        self.objects.pop(key, None)


def test_images_stay_inline_while_they_fit_and_the_largest_are_staged_once_they_do_not() -> None:
    stager = MemoryStager()
    small, large, medium = b"s" * 100, b"L" * 3000, b"m" * 1500
    refs, keys = pack([small, large, medium], stager, budget=10_000)
    assert keys == []
    assert all("b64" in ref for ref in refs)

    refs, keys = pack([small, large, medium], stager, budget=2500)
    assert len(keys) == 1
    assert keys[0].startswith(ENGINE_IO_PREFIX)
    assert refs[1] == {"s3": keys[0]}
    assert stager.objects[keys[0]] == large
    assert [codec.image_bytes(r, stager.objects.__getitem__) for r in refs] == [small, large, medium]

    refs, keys = pack([small, large, medium], None, budget=10)
    assert keys == []
    assert all("b64" in ref for ref in refs)


def test_the_client_deletes_what_it_staged_whether_the_engine_answers_or_not() -> None:
    stager = MemoryStager()

    def failing(payload: dict[str, Any]) -> dict[str, Any]:
        assert "s3" in payload["args"]["a"]
        raise EngineUnavailable("engine.unavailable", "忙", "busy", details={"retry_after_seconds": 5})

    client = EngineClient(failing, stager, budget=10)
    with pytest.raises(EngineUnavailable):
        RemoteFaceEngine(client).compare(b"a" * 100, b"b" * 100)
    assert stager.objects == {}
    assert len(stager.deleted) == 2


def test_the_client_raises_the_engines_error_and_keeps_the_version_each_reply_gives() -> None:
    replies: list[dict[str, Any]] = [
        {"ok": [{"text": "姓名", "confidence": 0.9, "box": None}], "version": "rapidocr 1.4.4"},
        {"error": codec.error_to_json(InvalidField("document.corrupt", "损坏", "corrupt", field="image"))},
    ]
    sent: list[dict[str, Any]] = []

    def invoker(payload: dict[str, Any]) -> dict[str, Any]:
        sent.append(payload)
        return replies.pop(0)

    ocr = RemoteOcrEngine(EngineClient(invoker))
    assert ocr.read(b"png") == [TextLine(text="姓名", confidence=0.9)]
    assert ocr.version == "rapidocr 1.4.4"
    with pytest.raises(InvalidField) as refused:
        ocr.read(b"bad")
    assert (refused.value.code, refused.value.field) == ("document.corrupt", "image")
    assert [p["op"] for p in sent] == ["ocr.read", "ocr.read"]  # the version cost no call


# -- the Lambda invoker ------------------------------------------------------------------------------------


def lambda_client(endpoint: str, read_timeout: float = 5.0) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "lambda",
        region_name="cn-north-1",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(read_timeout=read_timeout, retries={"max_attempts": 0, "mode": "standard"}),
    )


def stubbed(responses: list[tuple[str, Any]]) -> tuple[LambdaEngineInvoker, Any]:
    from botocore.response import StreamingBody
    from botocore.stub import Stubber

    client = lambda_client("https://lambda.cn-north-1.amazonaws.com.cn")
    stubber = Stubber(client)
    for kind, value in responses:
        if kind == "error":
            stubber.add_client_error("invoke", service_error_code=value, http_status_code=429)
        else:
            body = value.pop("Payload")
            stream = StreamingBody(io.BytesIO(body), len(body))
            stubber.add_response("invoke", {"StatusCode": 200, "Payload": stream, **value})
    stubber.activate()
    return LambdaEngineInvoker(client, "cheka-prod-engines"), stubber


def unavailable(invoker: LambdaEngineInvoker, op: str) -> EngineUnavailable:
    with pytest.raises(EngineUnavailable) as raised:
        invoker({"op": op, "args": {}})
    return raised.value


def test_a_reply_of_the_function_is_returned_as_it_came() -> None:
    invoker, stubber = stubbed([("ok", {"Payload": b'{"ok": [], "version": "v"}'})])
    assert invoker({"op": "ocr.read", "args": {}}) == {"ok": [], "version": "v"}
    stubber.assert_no_pending_responses()


def test_a_crash_or_a_timeout_inside_the_function_is_engine_unavailable_with_retry_after() -> None:
    crash = b'{"errorMessage": "MemoryError", "errorType": "MemoryError"}'
    timed_out = b'{"errorMessage": "2026-01-01T00:00:00Z Task timed out after 30.03 seconds"}'
    invoker, _ = stubbed(
        [
            ("ok", {"Payload": crash, "FunctionError": "Unhandled"}),
            ("ok", {"Payload": timed_out, "FunctionError": "Unhandled"}),
        ]
    )
    crashed = unavailable(invoker, "faces.compare")
    assert (crashed.status, crashed.code) == (503, "engine.unavailable")
    assert crashed.details == {"engine": "faces", "cause": "error", "retry_after_seconds": 5}
    late = unavailable(invoker, "liveness.judge")
    assert late.details == {"engine": "liveness", "cause": "timeout", "retry_after_seconds": 10}


def test_an_engine_that_cannot_answer_is_counted_in_the_alarmed_metric(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    crash = b'{"errorMessage": "boom"}'
    invoker, _ = stubbed([("ok", {"Payload": crash, "FunctionError": "Unhandled"})])
    unavailable(invoker, "ocr.read")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    counted = [line for line in lines if "EngineUnavailable" in line]
    assert {(line.get("engine"), line.get("cause")) for line in counted} == {("ocr", "error"), (None, None)}
    assert all(line["EngineUnavailable"] == [1.0] or line["EngineUnavailable"] == 1.0 for line in counted)


def test_throttling_is_tried_once_more_for_a_read_and_never_for_a_bind() -> None:
    invoker, stubber = stubbed([("error", "TooManyRequestsException"), ("ok", {"Payload": b'{"ok": []}'})])
    assert invoker({"op": "index.search", "args": {}}) == {"ok": []}
    stubber.assert_no_pending_responses()

    invoker, stubber = stubbed([("error", "TooManyRequestsException"), ("error", "TooManyRequestsException")])
    assert unavailable(invoker, "ocr.read").details["cause"] == "throttled"
    stubber.assert_no_pending_responses()

    invoker, stubber = stubbed([("error", "TooManyRequestsException"), ("ok", {"Payload": b"{}"})])
    assert unavailable(invoker, "index.bind").details == {
        "engine": "index",
        "cause": "throttled",
        "retry_after_seconds": 5,
    }
    with pytest.raises(AssertionError):
        stubber.assert_no_pending_responses()  # the second answer was never asked for


def test_a_missing_function_is_engine_unavailable_not_a_500() -> None:
    invoker, _ = stubbed([("error", "ResourceNotFoundException")])
    assert unavailable(invoker, "ocr.read").details["cause"] == "error"


class SlowLambda:
    """A Lambda endpoint on a free loopback port that answers after ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.requests += 1
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(delay)
                body = b'{"ok": null}'
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> SlowLambda:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slow_lambda() -> Iterator[SlowLambda]:
    with SlowLambda(delay=1.5) as server:
        yield server


def test_a_function_slower_than_the_timeout_is_engine_unavailable_and_is_not_sent_twice(
    slow_lambda: SlowLambda,
) -> None:
    invoker = LambdaEngineInvoker(lambda_client(slow_lambda.url, read_timeout=0.3), "cheka-prod-engines")
    started = time.perf_counter()
    error = unavailable(invoker, "liveness.judge")
    assert time.perf_counter() - started < 1.2
    assert error.details == {"engine": "liveness", "cause": "timeout", "retry_after_seconds": 10}
    assert slow_lambda.requests == 1


def test_an_unreachable_function_is_engine_unavailable() -> None:
    with SlowLambda(delay=0) as server:
        url = server.url
    invoker = LambdaEngineInvoker(lambda_client(url), "cheka-prod-engines")
    assert unavailable(invoker, "ocr.read").details["cause"] == "unreachable"


# -- the handler and the API package ------------------------------------------------------------------------


def test_the_handler_answers_ping_and_refuses_an_unknown_operation_as_an_answer() -> None:
    from chalicelib.engines.handler import Engines, dispatch, handle

    context = SimpleNamespace(
        function_name="cheka-test-engines",
        memory_limit_in_mb=2048,
        invoked_function_arn="arn:aws-cn:lambda:cn-north-1:123456789012:function:cheka-test-engines",
        aws_request_id="req-1",
    )
    assert handle({"op": "ping"}, context) == {"ok": {"stage": "test"}}
    reply = dispatch(Engines(), {"op": "faces.teleport", "args": {}})
    assert reply["error"]["code"] == "engine.bad_request"
    staged = dispatch(
        Engines(), {"op": "faces.detect", "args": {"image": {"s3": "documents/f/id_front/x.jpg"}}}
    )
    assert staged["error"]["code"] == "engine.bad_request"  # only engine-io/ objects are read


def test_the_remote_adapters_carry_the_names_of_the_engines_they_run() -> None:
    from chalicelib.adapters.engines import remote
    from chalicelib.adapters.faces.local import LocalFaceEngine
    from chalicelib.adapters.liveness.local import LocalLivenessEngine
    from chalicelib.adapters.ocr.rapidocr import RapidOcrEngine

    assert remote.RemoteOcrEngine.name == RapidOcrEngine.name
    assert remote.RemoteFaceEngine.name == remote.RemoteFaceIndex.name == LocalFaceEngine.name
    assert remote.RemoteFaceEngine.recommended_threshold == LocalFaceEngine.recommended_threshold
    assert remote.RemoteLivenessEngine.name == LocalLivenessEngine.name


def test_the_remote_adapters_and_the_invoker_import_no_numpy() -> None:
    code = (
        "import sys\n"
        "import chalicelib.adapters.engines.remote, chalicelib.adapters.engines.invoker\n"
        "loaded = [m for m in ('numpy', 'dlib', 'onnxruntime', 'cv2', 'PIL') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
