"""Every AWS resource of a stage besides its tables, declared once: the documents bucket, the KMS keys,
the queues, the secrets and the state machines.

Pure data, named from :class:`Settings`: ``chalicelib.local.bootstrap`` (``make run``, the tests) creates
them on the embedded AWS and ``infra.stack`` synthesises them, both from :func:`declare`, so the local
bucket is versioned with the same lifecycle rules as the deployed one, the local outbox redrives after as
many receives, and so on. (Tables have their own single definition: the pynamodb models, ``TABLES``.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from chalicelib.kernel.operators import Operator

if TYPE_CHECKING:  # importing this module loads no settings (a function may read its prefixes cheaply)
    from chalicelib.core.config import Settings

#: Unvalidated uploads (presigned POSTs): deleted once validated, expired after a day in any case.
RAW_PREFIX = "raw/"
#: Validated photos of a flow (ID card sides, live captures...), purged with the flow.
DOCUMENTS_PREFIX = "documents/"
#: Rekognition Face Liveness writes a session's reference and audit images here (Rekognition stages).
LIVENESS_PREFIX = "liveness/"
#: Images staged for the engines function when a payload is too large to pass inline: a day at most.
ENGINE_IO_PREFIX = "engine-io/"
#: Every prefix whose objects are personal data (photos of ID cards and faces): a deleted or replaced
#: object's noncurrent versions expire within a day there, behind the deletes that remove every version.
PERSONAL_DATA_PREFIXES = (RAW_PREFIX, DOCUMENTS_PREFIX, LIVENESS_PREFIX, ENGINE_IO_PREFIX)
#: Prefixes whose objects are transient: they expire a day after they are written.
TRANSIENT_PREFIXES = (RAW_PREFIX, ENGINE_IO_PREFIX)

#: Timeout of the deployed API and job functions (API Gateway integrations stop at 29 s).
FUNCTION_TIMEOUT_SECONDS = 30
#: Receives of one outbox message before SQS moves it to the dead-letter queue.
OUTBOX_MAX_RECEIVES = 5
#: Six times the function timeout, as AWS advises for a queue that is a Lambda event source.
OUTBOX_VISIBILITY_SECONDS = 6 * FUNCTION_TIMEOUT_SECONDS
#: Dead letters are kept the longest SQS allows, for operations to inspect and redrive.
DEAD_LETTER_RETENTION_SECONDS = 14 * 86400
#: Length of a generated secret (the token signing key).
GENERATED_SECRET_LENGTH = 64
#: Receives of one fleet task message before SQS moves it to the fleet tasks' dead-letter queue.
FLEET_TASKS_MAX_RECEIVES = 5
#: Receives of one campaign waves message (a wave's start or one shard's plan) before its dead-letter
#: queue: a planner that runs out of time re-sends its own message, so a receive is a real failure.
CAMPAIGN_WAVES_MAX_RECEIVES = 5
#: Receives of one campaign sends message before its dead-letter queue. A quiet-hours or pause deferral
#: is a receive too (the sender puts the message back with a longer visibility and reports it failed),
#: so the figure leaves room for deferrals besides real failures; a sender that defers a message already
#: received ``CAMPAIGN_SENDS_MAX_RECEIVES - 2`` times re-sends it as a fresh message instead, so no
#: deferral, however long, dead-letters a send.
CAMPAIGN_SENDS_MAX_RECEIVES = 10
#: Timeout of the campaign functions (the planner bounds itself well within it).
CAMPAIGN_FUNCTION_TIMEOUT_SECONDS = 60
#: Six times the function timeout, as AWS advises for a queue that is a Lambda event source.
CAMPAIGN_VISIBILITY_SECONDS = 6 * CAMPAIGN_FUNCTION_TIMEOUT_SECONDS
#: The fleet review state machine's definition (Amazon States Language), read by infra and the bootstrap.
STATE_MACHINES_DIR = Path(__file__).resolve().parents[2] / "infra" / "statemachines"


@dataclass(frozen=True)
class LifecycleRule:
    """One lifecycle rule of a bucket; ``prefix`` "" is the whole bucket."""

    id: str
    prefix: str = ""
    #: Current versions expire (become noncurrent behind a delete marker) this many days after writing.
    expire_days: int | None = None
    #: Noncurrent versions are deleted this many days after they became noncurrent.
    noncurrent_expire_days: int | None = None
    #: Incomplete multipart uploads are aborted this many days after they began.
    abort_multipart_days: int | None = None
    #: Delete markers with no version left behind them are removed.
    expired_delete_markers: bool = False


@dataclass(frozen=True)
class BucketDeclaration:
    name: str
    versioned: bool
    lifecycle: tuple[LifecycleRule, ...]
    #: ``KeyDeclaration.id`` of the key that encrypts every object (SSE-KMS, bucket key enabled).
    encryption_key: str
    #: Every public access is blocked.
    block_public_access: bool = True
    #: Cross-origin rules: the H5 page POSTs photos to the presigned form from another origin and
    #: reads the answer (upload progress needs the CORS preflight). The signature is the authority.
    cors: tuple[CorsRule, ...] = ()


@dataclass(frozen=True)
class CorsRule:
    methods: tuple[str, ...]
    origins: tuple[str, ...]
    headers: tuple[str, ...] = ("*",)
    max_age_seconds: int = 3000


KeySpec = Literal["SYMMETRIC_DEFAULT", "HMAC_256"]
KeyUsage = Literal["ENCRYPT_DECRYPT", "GENERATE_VERIFY_MAC"]


@dataclass(frozen=True)
class KeyDeclaration:
    id: str
    alias: str
    description: str
    spec: KeySpec
    usage: KeyUsage
    #: Yearly automatic rotation (KMS rotates symmetric encryption keys only).
    rotation: bool


@dataclass(frozen=True)
class QueueDeclaration:
    id: str
    name: str
    visibility_timeout_seconds: int = 30
    retention_seconds: int = 4 * 86400
    #: ``QueueDeclaration.id`` of the dead-letter queue, and the receives before a message moves there.
    dead_letter_queue: str | None = None
    max_receives: int | None = None


@dataclass(frozen=True)
class StateMachineDeclaration:
    """A Step Functions state machine (Standard): its ASL file and the values of its placeholders.

    ``${Name}`` placeholders of the definition are filled by :meth:`render`: ``substitutions`` holds the
    values known from the settings (timeouts: a whole-string placeholder takes the value's type, so a
    number stays a number); the caller adds those only it knows (the tasks queue's URL and the partition:
    the created queue's URL locally, CloudFormation references in infra)."""

    id: str
    name: str
    definition_path: Path
    substitutions: tuple[tuple[str, str | int], ...] = ()
    #: ``QueueDeclaration.id`` of the queue its tasks are sent to.
    tasks_queue: str | None = None

    def placeholders(self) -> set[str]:
        """Every ``${Name}`` the definition holds."""
        return set(_PLACEHOLDER.findall(self.definition_path.read_text(encoding="utf-8")))

    def render(self, **values: str | int) -> str:
        """The definition (JSON text) with every placeholder filled; a placeholder left unfilled raises."""
        filled: dict[str, str | int] = {**dict(self.substitutions), **values}
        missing = self.placeholders() - set(filled)
        if missing:
            raise ValueError(f"state machine {self.id}: no value for {sorted(missing)}")
        definition = json.loads(self.definition_path.read_text(encoding="utf-8"))
        return json.dumps(_fill(definition, filled), ensure_ascii=False)


_PLACEHOLDER = re.compile(r"\$\{([A-Za-z][A-Za-z0-9]*)\}")


def _fill(node: Any, values: Mapping[str, str | int]) -> Any:
    if isinstance(node, dict):
        return {key: _fill(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [_fill(value, values) for value in node]
    if isinstance(node, str):
        whole = _PLACEHOLDER.fullmatch(node)
        if whole is not None:
            return values[whole.group(1)]
        return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), node)
    return node


SecretContent = Literal["generated", "operator_keys", "provided"]


@dataclass(frozen=True)
class SecretDeclaration:
    id: str
    name: str
    description: str
    #: "generated": a random key of ``GENERATED_SECRET_LENGTH`` letters and digits, made at creation;
    #: "operator_keys": an operator's signing and encryption keys (random locally; deployed, from the
    #: key exchange with the operator); "provided": credentials operations put in (a provider's keys).
    content: SecretContent


@dataclass(frozen=True)
class StageResources:
    bucket: BucketDeclaration
    keys: tuple[KeyDeclaration, ...]
    queues: tuple[QueueDeclaration, ...]
    secrets: tuple[SecretDeclaration, ...]
    state_machines: tuple[StateMachineDeclaration, ...] = ()

    def key(self, key_id: str) -> KeyDeclaration:
        return next(k for k in self.keys if k.id == key_id)

    def queue(self, queue_id: str) -> QueueDeclaration:
        return next(q for q in self.queues if q.id == queue_id)

    def secret(self, secret_id: str) -> SecretDeclaration:
        return next(s for s in self.secrets if s.id == secret_id)

    def state_machine(self, machine_id: str) -> StateMachineDeclaration:
        return next(m for m in self.state_machines if m.id == machine_id)

    def dead_letter_of(self, queue: QueueDeclaration) -> QueueDeclaration | None:
        return None if queue.dead_letter_queue is None else self.queue(queue.dead_letter_queue)


PII_KEY = "pii"
PII_HASH_KEY = "pii-hash"
OUTBOX_QUEUE_ID = "outbox"
OUTBOX_DEAD_LETTER_QUEUE_ID = "outbox-dlq"
TOKEN_SECRET = "token-signing-key"
FLEET_TASKS_QUEUE_ID = "fleet-tasks"
FLEET_TASKS_DEAD_LETTER_QUEUE_ID = "fleet-tasks-dlq"
FLEET_REVIEW_STATE_MACHINE_ID = "fleet-review"
CAMPAIGN_WAVES_QUEUE_ID = "campaign-waves"
CAMPAIGN_WAVES_DEAD_LETTER_QUEUE_ID = "campaign-waves-dlq"
CAMPAIGN_SENDS_QUEUE_ID = "campaign-sends"
CAMPAIGN_SENDS_DEAD_LETTER_QUEUE_ID = "campaign-sends-dlq"
AUTHORITY_SECRET = "authority"
#: The key the SMS provider signs its reply callbacks with (opt-out keywords of backfill campaigns).
SMS_REPLY_SECRET = "sms-reply"


def operator_secret_id(operator: str) -> str:
    return f"operator-{operator}"


def documents_lifecycle() -> tuple[LifecycleRule, ...]:
    """The documents bucket's rules: a delete really deletes, even when a version was missed."""
    rules = [
        LifecycleRule(id="abort-incomplete-multipart-uploads", abort_multipart_days=1),
        LifecycleRule(id="remove-expired-delete-markers", expired_delete_markers=True),
    ]
    for prefix in PERSONAL_DATA_PREFIXES:
        name = prefix.rstrip("/")
        transient = prefix in TRANSIENT_PREFIXES
        rules.append(
            LifecycleRule(
                id=f"expire-{name}" if transient else f"expire-noncurrent-{name}",
                prefix=prefix,
                expire_days=1 if transient else None,
                noncurrent_expire_days=1,
            )
        )
    return tuple(rules)


def declare(settings: Settings) -> StageResources:
    """The bucket, keys, queues and secrets of ``settings``' stage."""
    name = f"{settings.resource_prefix}-{settings.stage}"
    stage = settings.stage
    secrets = [
        SecretDeclaration(
            id=TOKEN_SECRET,
            name=settings.token_secret_name,
            description=f"cheka {stage}: HS256 key that signs bearer tokens",
            content="generated",
        ),
        *(
            SecretDeclaration(
                id=operator_secret_id(op.value),
                name=settings.operator_secret_pattern.format(operator=op.value),
                description=f"cheka {stage}: signing and encryption keys of {op.value}",
                content="operator_keys",
            )
            for op in Operator
        ),
    ]
    if settings.authority_kind != "sandbox":  # a sandbox authority needs no credentials
        secrets.append(
            SecretDeclaration(
                id=AUTHORITY_SECRET,
                name=settings.authority_secret_name,
                description=f"cheka {stage}: {settings.authority_kind} authority keys",
                content="provided",
            )
        )
    if not settings.is_local:  # local stages sign replies with ``config.DEV_SMS_REPLY_SECRET``
        secrets.append(
            SecretDeclaration(
                id=SMS_REPLY_SECRET,
                name=settings.sms_reply_secret_name,
                description=f"cheka {stage}: key of the SMS provider's signed reply callbacks",
                content="provided",
            )
        )
    return StageResources(
        bucket=BucketDeclaration(
            name=settings.documents_bucket,
            versioned=True,
            lifecycle=documents_lifecycle(),
            encryption_key=PII_KEY,
            cors=(CorsRule(methods=("POST",), origins=("*",)),),
        ),
        keys=(
            KeyDeclaration(
                id=PII_KEY,
                alias=settings.pii_key_alias,
                description="cheka personal-data encryption (field data keys, tables, documents)",
                spec="SYMMETRIC_DEFAULT",
                usage="ENCRYPT_DECRYPT",
                rotation=True,
            ),
            KeyDeclaration(
                id=PII_HASH_KEY,
                alias=settings.hash_key_alias,
                description="cheka ID-number look-up hashes (HMAC, the key never leaves KMS)",
                spec="HMAC_256",
                usage="GENERATE_VERIFY_MAC",
                rotation=False,
            ),
        ),
        queues=(
            QueueDeclaration(
                id=OUTBOX_DEAD_LETTER_QUEUE_ID,
                name=f"{name}-outbox-dlq",
                retention_seconds=DEAD_LETTER_RETENTION_SECONDS,
            ),
            QueueDeclaration(
                id=OUTBOX_QUEUE_ID,
                name=f"{name}-outbox",
                visibility_timeout_seconds=OUTBOX_VISIBILITY_SECONDS,
                dead_letter_queue=OUTBOX_DEAD_LETTER_QUEUE_ID,
                max_receives=OUTBOX_MAX_RECEIVES,
            ),
            QueueDeclaration(
                id=FLEET_TASKS_DEAD_LETTER_QUEUE_ID,
                name=f"{name}-fleet-tasks-dlq",
                retention_seconds=DEAD_LETTER_RETENTION_SECONDS,
            ),
            QueueDeclaration(
                id=FLEET_TASKS_QUEUE_ID,
                name=f"{name}-fleet-tasks",
                visibility_timeout_seconds=OUTBOX_VISIBILITY_SECONDS,
                dead_letter_queue=FLEET_TASKS_DEAD_LETTER_QUEUE_ID,
                max_receives=FLEET_TASKS_MAX_RECEIVES,
            ),
            QueueDeclaration(
                id=CAMPAIGN_WAVES_DEAD_LETTER_QUEUE_ID,
                name=f"{name}-campaign-waves-dlq",
                retention_seconds=DEAD_LETTER_RETENTION_SECONDS,
            ),
            QueueDeclaration(
                id=CAMPAIGN_WAVES_QUEUE_ID,
                name=f"{name}-campaign-waves",
                visibility_timeout_seconds=CAMPAIGN_VISIBILITY_SECONDS,
                dead_letter_queue=CAMPAIGN_WAVES_DEAD_LETTER_QUEUE_ID,
                max_receives=CAMPAIGN_WAVES_MAX_RECEIVES,
            ),
            QueueDeclaration(
                id=CAMPAIGN_SENDS_DEAD_LETTER_QUEUE_ID,
                name=f"{name}-campaign-sends-dlq",
                retention_seconds=DEAD_LETTER_RETENTION_SECONDS,
            ),
            QueueDeclaration(
                id=CAMPAIGN_SENDS_QUEUE_ID,
                name=f"{name}-campaign-sends",
                visibility_timeout_seconds=CAMPAIGN_VISIBILITY_SECONDS,
                dead_letter_queue=CAMPAIGN_SENDS_DEAD_LETTER_QUEUE_ID,
                max_receives=CAMPAIGN_SENDS_MAX_RECEIVES,
            ),
        ),
        secrets=tuple(secrets),
        state_machines=(
            StateMachineDeclaration(
                id=FLEET_REVIEW_STATE_MACHINE_ID,
                name=f"{name}-fleet-review",
                definition_path=STATE_MACHINES_DIR / "fleet_review.asl.json",
                substitutions=(
                    ("CodeTaskTimeoutSeconds", settings.fleet_code_task_timeout_seconds),
                    ("ResubmissionTimeoutSeconds", settings.fleet_resubmission_timeout_seconds),
                ),
                tasks_queue=FLEET_TASKS_QUEUE_ID,
            ),
        ),
    )
