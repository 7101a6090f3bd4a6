"""The owner's whole registration on a deployed stage's settings, in this process, without AWS.

The stage's declared settings (``.chalice/config.json``, region kept) run against moto in-process
(``mock_aws``), its resources created by the same bootstrap as ``make run`` from the declaration infra
synthesises. What the deployed stage reaches outside AWS is replaced by what stands for it locally:

- the engines (OCR, faces, liveness; ``remote`` on dev and prod) by the engines function's handler called
  in this process (``DirectEngineInvoker``: the same JSON requests and replies as through Lambda);
- the identity authority (Tencent Cloud FaceID) by a local fake of its TC3-signed API
  (``tests.fakes.tencent_faceid``), its keys in the stage's Secrets Manager secret as operations put them;
- SMS (SNS) by moto's SNS, whose published messages are read back for the codes.

The operators are what a fresh deployment has: no endpoint URL (``CHEKA_OPERATOR_BASE_URLS`` unset) and
secrets holding CDK's placeholder instead of keys, so the submitted registration's push waits in the
outbox, pending with "operator not configured", never dead-lettered, and ``/health`` names what is
missing. A person is driven through the API exactly as the
H5 client drives it: the inventory imported by an admin, start, vehicle, phone (the sales record's phone
shows possession), identity, the biometric consent, both ID card sides read by OCR and checked with the
authority, a head-turn burst of real face photos, the agreements, submit; then the outbox consumer's
Lambda entry point handles the queued push.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The shared face photos (never copied): the ID card's portrait and the live person (the same man).
FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"
CARD_PORTRAIT = "obama_video_1080p.jpg"
LIVE_PERSON = "obama_1.jpg"
#: The person's phone, also the sales record's contact phone of the car (possession: ``sales_phone``).
PHONE = "13912345678"
OWNER = "owner-rehearsal"
REG = "/v1/me/registrations"
#: Portrait similarity the fake authority answers for the person (its threshold is 70).
AUTHORITY_SIMILARITY = 91.0


class RehearsalFailed(AssertionError):
    """A step of the rehearsal did not give what a working deployment gives."""


@dataclass
class Step:
    name: str
    seconds: float
    detail: str
    ok: bool = True


@dataclass
class Rehearsal:
    """What the rehearsal saw: each step, and the registration it ended with."""

    stage: str
    steps: list[Step] = field(default_factory=list)
    registration: dict[str, Any] = field(default_factory=dict)
    outbox: dict[str, Any] = field(default_factory=dict)
    engine_calls: dict[str, int] = field(default_factory=dict)
    health: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)


# -- the stage's process environment ------------------------------------------------------------------

#: Variables of this process that would change the app's settings or its AWS access: set aside.
_SETTING_PREFIXES = ("CHEKA_", "AWS_", "POWERTOOLS_")


@contextlib.contextmanager
def stage_process(stage: str, **overrides: str) -> Iterator[Any]:
    """This process as a function of ``stage``: its declared environment (plus ``overrides`` and fake
    AWS credentials for moto), moto in-process, fresh settings and adapters; all restored afterwards.
    Yields the stage's :class:`Settings`."""
    from moto import mock_aws

    from chalicelib.core import aws, deps
    from chalicelib.core.settings import get_settings
    from chalicelib.core.stages import stage_environment, stage_settings
    from chalicelib.local.moto_patches import apply

    region = stage_settings(stage).region
    saved = dict(os.environ)
    for key in [k for k in os.environ if k.startswith(_SETTING_PREFIXES)]:
        del os.environ[key]
    os.environ.update(stage_environment(stage))
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": region,
            # No X-Ray daemon in this process; metrics stay on (EMF lines on stdout, as in Lambda).
            "POWERTOOLS_TRACE_DISABLED": "true",
            **overrides,
        }
    )
    apply()  # DynamoDB's transaction behaviour on moto, as make run and the tests have it
    try:
        with mock_aws():
            aws.reset()
            deps.reset()
            yield get_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        aws.reset()
        deps.reset()


# -- the API as the client calls it -------------------------------------------------------------------


class Api:
    def __init__(self, client: Any, token: Callable[..., str]) -> None:
        self._client = client
        self._token = token

    def headers(self, role: str, subject: str, content_type: str = "application/json") -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token(role, subject)}", "Content-Type": content_type}

    def call(
        self, method: str, path: str, body: Any = None, *, role: str = "owner", subject: str = OWNER
    ) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"headers": self.headers(role, subject)}
        if body is not None:
            kwargs["body"] = json.dumps(body)
        response = getattr(self._client.http, method)(path, **kwargs)
        return response.status_code, json.loads(response.body) if response.body else None

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        """A non-HTTP function of the app, invoked with a Lambda context as Lambda invokes it."""
        return self._client.lambda_.invoke(function, event).payload

    def post_raw(self, path: str, body: bytes, content_type: str, *, role: str, subject: str = "ops") -> Any:
        headers = self.headers(role, subject, content_type=content_type)
        response = self._client.http.post(path, headers=headers, body=body)
        answer = json.loads(response.body) if response.body else None
        if response.status_code != 200:
            raise RehearsalFailed(f"POST {path}: {response.status_code}: {answer}")
        return answer

    def expect(self, status: int, method: str, path: str, body: Any = None, **who: str) -> Any:
        got, answer = self.call(method, path, body, **who)
        if got != status:
            raise RehearsalFailed(f"{method.upper()} {path}: {got} (expected {status}): {answer}")
        return answer


def _expect_step(reg: dict[str, Any], step: str, after: str) -> None:
    if reg.get("step") != step:
        raise RehearsalFailed(f"after {after} the step due is {reg.get('step')!r}, expected {step!r}: {reg}")


# -- the walk -----------------------------------------------------------------------------------------


def _inventory_csv(owner_phone: str) -> tuple[str, str]:
    """One synthetic vehicle with one card, its sales record's phone given; returns (csv, vin)."""
    from chalicelib.local.synthetic import inventory_rows

    row = next(inventory_rows(1, seed=12))  # each rehearsal has a fresh moto: the same car each time
    row["owner_phone"] = owner_phone
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(row))
    writer.writeheader()
    writer.writerow(row)
    return out.getvalue(), row["vin"]


def _sns_code(settings: Any, phone: str) -> str:
    """The newest code SNS (moto) was asked to send to ``phone``."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.sns.models import sns_backends

    sent = sns_backends[DEFAULT_ACCOUNT_ID][settings.region].sms_messages
    texts = [text for number, text in sent.values() if number == f"+86{phone}"]
    if not texts or "验证码" not in texts[-1]:
        raise RehearsalFailed(f"no code was published to SNS for the phone (messages: {len(sent)})")
    return "".join(ch for ch in texts[-1].split("验证码", 1)[1] if ch.isdigit())[:6]


def _burst(direction: str) -> list[str]:
    """A head turn toward ``direction`` built from the live person's photo, as a handheld camera."""
    from chalicelib.adapters.faces.local import LocalFaceEngine
    from chalicelib.verification.domain.liveness import LivenessDirection
    from tests.liveness_frames import handheld, nodding_burst, turning_frames

    turn = LivenessDirection(direction)
    make = nodding_burst if turn.axis == "pitch" else turning_frames
    return [base64.b64encode(f).decode() for f in handheld(make(LocalFaceEngine(), LIVE_PERSON, turn.sign))]


def _upload(api: Api, flow_id: str, kind: str, photo: bytes) -> None:
    """Presign, put the photo where the presigned POST puts it, complete."""
    from chalicelib.core.aws import client
    from chalicelib.core.settings import get_settings

    post = api.expect(
        201, "post", f"/v1/flows/{flow_id}/uploads", {"kind": kind, "content_type": "image/jpeg"}
    )
    client("s3").put_object(
        Bucket=get_settings().documents_bucket, Key=post["key"], Body=photo, ContentType="image/jpeg"
    )
    api.expect(201, "post", f"/v1/flows/{flow_id}/documents", {"kind": kind, "key": post["key"]})


def _outbox_consumer(api: Api) -> dict[str, Any]:
    """The outbox queue's messages handled by the deployed consumer (the ``dispatch_outbox`` function,
    invoked as its SQS event source mapping invokes it); returns the card's outbox record."""
    from chalicelib.adapters.dynamo.models_outbox import OutboxModel
    from chalicelib.core import deps
    from chalicelib.core.aws import client

    sqs = client("sqs")
    messages = sqs.receive_message(QueueUrl=deps.push_queue().url, MaxNumberOfMessages=10).get("Messages", [])
    if not messages:
        raise RehearsalFailed("the submit queued no push")
    event = {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "eventSource": "aws:sqs",
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
            }
            for m in messages
        ]
    }
    result = api.invoke("dispatch_outbox", event)
    records = [r for r in OutboxModel.scan() if r.kind == "register"]
    if len(records) != 1:
        raise RehearsalFailed(f"expected one register push, found {len(records)}")
    record = records[0]
    return {
        "batch_failures": result.get("batchItemFailures", []),
        "status": str(record.status),
        "attempts": int(record.attempts or 0),
        "last_error": record.last_error,
        "operator": str(record.operator),
    }


def rehearse_registration(
    stage: str = "prod", *, say: Callable[[str], None] = print, faces: Path = FACES
) -> Rehearsal:
    """Walk the owner's registration on ``stage``'s settings; raises :class:`RehearsalFailed` on the first
    step that does not give what a working deployment gives (the steps so far are in its ``rehearsal``)."""
    from chalicelib.local.documents import NO_FONT, cjk_font_path

    result = Rehearsal(stage)
    if cjk_font_path() is None:
        raise RehearsalFailed(NO_FONT)
    if not (faces / CARD_PORTRAIT).is_file() or not (faces / LIVE_PERSON).is_file():
        raise RehearsalFailed(f"face photos {CARD_PORTRAIT}, {LIVE_PERSON} not found in {faces}")
    try:
        _walk(stage, result, say, faces)
    except RehearsalFailed as failed:
        failed.rehearsal = result  # type: ignore[attr-defined]
        raise
    return result


@contextlib.contextmanager
def _timed(result: Rehearsal, name: str, say: Callable[[str], None]) -> Iterator[list[str]]:
    detail: list[str] = []
    started = time.perf_counter()
    try:
        yield detail
    except Exception as err:
        step = Step(name, time.perf_counter() - started, f"{type(err).__name__}: {err}", ok=False)
        result.steps.append(step)
        say(f"    ✗ {name:<34} {step.seconds:6.2f}s  {step.detail}")
        if isinstance(err, RehearsalFailed):
            raise
        raise RehearsalFailed(f"{name}: {type(err).__name__}: {err}") from err
    step = Step(name, time.perf_counter() - started, "; ".join(detail))
    result.steps.append(step)
    say(f"    ✓ {name:<34} {step.seconds:6.2f}s  {step.detail}")


def _walk(stage: str, result: Rehearsal, say: Callable[[str], None], faces: Path) -> None:
    from chalice.test import Client

    from chalicelib.adapters.engines.invoker import DirectEngineInvoker
    from chalicelib.core import deps
    from chalicelib.core.auth import STAFF_ROLES, Role, issue_token
    from chalicelib.local.bootstrap import create_resources
    from chalicelib.local.documents import PERSON_ID_NUMBER, PERSON_NAME
    from tests.fakes.oidc_issuer import TestIssuer
    from tests.fakes.tencent_faceid import SECRET_ID, SECRET_KEY, FakeFaceId

    authority = FakeFaceId(
        citizens={PERSON_ID_NUMBER: PERSON_NAME}, similarity={PERSON_ID_NUMBER: AUTHORITY_SIMILARITY}
    ).start()
    # The staff IdP: a loopback issuer standing in for the stage's (its tokens carry a second factor and
    # the stage's groups); a deployed stage refuses our own tokens with staff roles.
    staff_idp = TestIssuer(audience="cheka-rehearsal-console").start()
    invoker = DirectEngineInvoker()
    try:
        with stage_process(
            stage,
            CHEKA_AUTHORITY_TENCENT_ENDPOINT=authority.endpoint,
            CHEKA_STAFF_OIDC_ISSUER=staff_idp.issuer,
            CHEKA_STAFF_OIDC_AUDIENCE=staff_idp.audience,
        ) as settings:
            deps.use_engine_invoker(invoker)
            with _timed(result, "resources (declared)", say) as detail:
                made = create_resources(settings)
                _as_freshly_deployed(settings)
                if settings.authority_kind == "tencent":
                    keys = {"secret_id": SECRET_ID, "secret_key": SECRET_KEY}
                    _put_secret(settings.authority_secret_name, keys)
                detail.append(
                    f"{len(made['tables_created'])} tables, bucket, keys, queues, "
                    f"{len(made['secrets_created'])} secrets; engines {'/'.join(settings.remote_engines)} "
                    f"remote, authority {settings.authority_kind}, region {settings.region}"
                )

            from app import app

            def token(role: str, subject: str) -> str:
                if Role(role) in STAFF_ROLES:  # signed in at the staff IdP, with the stage's groups
                    groups = [g for g, r in settings.staff_oidc_role_map.items() if r == role] or [role]
                    claims: dict[str, Any] = {"groups": None, settings.staff_oidc_roles_claim: groups}
                    return staff_idp.token(sub=subject, **claims)
                return issue_token(settings, subject, [Role(role)])

            with Client(app) as client_:
                api = Api(client_, token)
                _registration(api, settings, result, say, faces)
                with _timed(result, "push (outbox consumer)", say) as detail:
                    outbox = _outbox_consumer(api)
                    result.outbox = outbox
                    if outbox["batch_failures"]:
                        raise RehearsalFailed(f"the consumer failed messages: {outbox['batch_failures']}")
                    if outbox["status"] not in ("pending", "OutboxStatus.PENDING") or outbox["attempts"] != 0:
                        raise RehearsalFailed(
                            f"the push should wait for the operator's configuration: {outbox}"
                        )
                    if not str(outbox["last_error"] or "").startswith("operator not configured"):
                        raise RehearsalFailed(f"the push does not say what it waits for: {outbox}")
                    detail.append(f"{outbox['operator']}: pending, 0 attempts, {outbox['last_error']!r}")
                with _timed(result, "health", say) as detail:
                    detail.append(_check_health(api, result))
    finally:
        from chalicelib.core import deps as deps_

        deps_.use_engine_invoker(None)
        authority.stop()
        staff_idp.down()
    result.engine_calls = dict(invoker.calls)
    say(f"    engine function calls: {json.dumps(result.engine_calls, sort_keys=True)}")


def _as_freshly_deployed(settings: Any) -> None:
    """The operators' secrets as a fresh deploy leaves them: CDK's placeholder, a random string that
    holds no keys, until operations put in the keys of the key exchange (the local bootstrap makes up
    random keys instead, for the sandbox operator)."""
    from chalicelib.core.aws import client
    from chalicelib.kernel.operators import Operator

    sm = client("secretsmanager")
    for operator in Operator:
        name = settings.operator_secret_pattern.format(operator=operator.value)
        sm.put_secret_value(SecretId=name, SecretString=secrets.token_urlsafe(24))


def _put_secret(name: str, value: dict[str, str]) -> None:
    """Operations' part: the provider's keys put into the secret infra created (empty until then)."""
    from chalicelib.core.aws import client

    sm = client("secretsmanager")
    try:
        sm.put_secret_value(SecretId=name, SecretString=json.dumps(value))
    except sm.exceptions.ResourceNotFoundException:
        sm.create_secret(Name=name, SecretString=json.dumps(value))


def _check_health(api: Api, result: Rehearsal) -> str:
    """``/health`` as an admin sees it: every required dependency up, and each operator that lacks a
    setting named with what it lacks (not required: its pushes wait); the public sees up/down only."""
    status, health = api.call("get", "/health", role="admin", subject="ops")
    result.health = {"status_code": status, **(health or {})}
    checks: dict[str, dict[str, Any]] = (health or {}).get("checks") or {}
    down = sorted(name for name, c in checks.items() if not c.get("ok") and c.get("required", True))
    if status != 200 or not checks or down:
        raise RehearsalFailed(f"/health answered {status}, required dependencies down: {down or health}")
    waiting = {
        name: c.get("error") for name, c in checks.items() if name.startswith("operator") and not c["ok"]
    }
    if not waiting:
        raise RehearsalFailed("/health does not say that the operators lack their settings")
    public = api._client.http.get("/health")
    if set(json.loads(public.body)) != {"status"}:
        raise RehearsalFailed(f"/health tells a public caller more than up/down: {public.body!r}")
    return f"{len(checks)} checks up except operators waiting: " + ", ".join(
        f"{name.split(':')[-1]} ({error})" for name, error in sorted(waiting.items())
    )


def _registration(
    api: Api, settings: Any, result: Rehearsal, say: Callable[[str], None], faces: Path
) -> None:
    from chalicelib.local.documents import PERSON_ADDRESS, PERSON_ID_NUMBER, PERSON_NAME, id_back, id_front

    with _timed(result, "inventory import (admin)", say) as detail:
        body, vin = _inventory_csv(PHONE)
        report = api.post_raw("/v1/admin/inventory/imports", body.encode(), "text/csv", role="admin")
        if report.get("errors"):
            raise RehearsalFailed(f"the inventory import refused rows: {report['errors']}")
        detail.append(f"1 vehicle, 1 card (VIN …{vin[-6:]})")
    with _timed(result, "start + vehicle", say) as detail:
        reg = api.expect(201, "post", REG, {"vin": vin})
        reg_id = reg["registration_id"]
        reg = api.expect(200, "post", f"{REG}/{reg_id}/confirm-vehicle", {})
        _expect_step(reg, "verify_phone", "confirm-vehicle")
        detail.append(f"registration {reg_id[:8]}…")
    with _timed(result, "phone (SMS code via SNS)", say) as detail:
        api.expect(202, "post", "/v1/auth/sms-codes", {"phone": PHONE, "purpose": "owner_phone"})
        code = _sns_code(settings, PHONE)
        reg = api.expect(200, "post", f"{REG}/{reg_id}/phone", {"phone": PHONE, "code": code})
        _expect_step(reg, "identity", "the phone (the sales record's phone shows possession)")
        detail.append("code published to SNS, read back; possession by the sales phone")
    flow_id = reg["flow_id"]
    with _timed(result, "identity", say) as detail:
        identity = {
            "id_type": "resident_id",
            "id_number": PERSON_ID_NUMBER,
            "name": PERSON_NAME,
            "address": PERSON_ADDRESS,
        }
        api.expect(200, "put", f"/v1/flows/{flow_id}/identity", identity)
        detail.append("typed identity accepted")
    with _timed(result, "biometric consent (before any face is processed)", say) as detail:
        _, texts = api.call("get", "/v1/consents")
        doc = next(d for d in texts["documents"] if d["kind"] == "biometric_consent")
        consent = {"version": doc["version"], "sha256": doc["sha256"], "client": {"ua": "deploy-check"}}
        api.expect(200, "post", f"/v1/flows/{flow_id}/biometric-consent", consent)
        detail.append(f"{doc['version']} accepted as served")
    for kind, photo in (
        ("id_front", id_front(portrait=faces / CARD_PORTRAIT)),
        ("id_back", id_back()),
    ):
        with _timed(result, f"{kind}: upload + OCR (remote)", say) as detail:
            _upload(api, flow_id, kind, photo)
            api.expect(200, "post", f"/v1/flows/{flow_id}/ocr/{kind}")
            detail.append(f"read and cross-checked ({len(photo) // 1024} KB photo)")
            if kind == "id_front":
                detail.append(f"identity checked with the {settings.authority_kind} authority")
    with _timed(result, "face: liveness + match (remote)", say) as detail:
        session = api.expect(201, "post", f"/v1/flows/{flow_id}/liveness-sessions")
        from tests.liveness_frames import capture_times

        frames = _burst(session["challenge"]["direction"])
        outcome = api.expect(
            200,
            "post",
            f"/v1/flows/{flow_id}/liveness-sessions/{session['session_id']}/result",
            {
                "frames": frames,
                "nonce": session["challenge"].get("nonce"),
                "timestamps_ms": capture_times(len(frames)),
            },
        )
        if outcome.get("passed") is not True:
            raise RehearsalFailed(f"the face check did not pass: {outcome}")
        detail.append(f"{len(frames)} frames turning {session['challenge']['direction']}: passed")
    with _timed(result, "agreements", say) as detail:
        reg = api.expect(200, "get", f"{REG}/{reg_id}")
        _expect_step(reg, "consents", "the face check")
        _, texts = api.call("get", "/v1/consents")
        accepted = [
            {"kind": d["kind"], "version": d["version"], "sha256": d["sha256"]} for d in texts["documents"]
        ]
        reg = api.expect(
            200, "post", f"{REG}/{reg_id}/consents", {"accepted": accepted, "client": {"ua": "deploy-check"}}
        )
        _expect_step(reg, "submit", "the agreements")
        detail.append(f"{len(accepted)} texts accepted")
    with _timed(result, "submit", say) as detail:
        reg = api.expect(200, "post", f"{REG}/{reg_id}/submit")
        _expect_step(reg, "pending", "submit")
        states = [card["state"] for card in reg.get("cards", [])]
        if states != ["pending"]:
            raise RehearsalFailed(f"the card is not pending after submit: {states}")
        detail.append("registration pending, card pending")
    result.registration = reg
