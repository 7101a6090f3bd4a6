"""Lazy, cached dependency getters: adapters are built on first use, never at import time."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from chalicelib.core.settings import get_settings

if TYPE_CHECKING:
    from chalicelib.accounts.ports import PasswordHashing
    from chalicelib.accounts.realname import RealNames
    from chalicelib.accounts.service import Accounts
    from chalicelib.adapters.campaign_queues import SqsCampaignQueue
    from chalicelib.adapters.dynamo.campaign_sends import DynamoRateLimiter, DynamoSendLedger
    from chalicelib.adapters.dynamo.nonces import DynamoNonces
    from chalicelib.adapters.dynamo.outbox import DynamoOutboxStore, SqsPushQueue
    from chalicelib.adapters.dynamo.staff import DynamoStaffRevocations
    from chalicelib.adapters.engines.invoker import EngineInvoker
    from chalicelib.adapters.engines.remote import EngineClient
    from chalicelib.adapters.operator.http import HttpOperatorGateway
    from chalicelib.adapters.sms.local import LocalSmsDrop
    from chalicelib.adapters.vehicle.sandbox import SandboxVehicleChannel
    from chalicelib.audit.service import ReadLog
    from chalicelib.campaigns.in_service import InServiceImport
    from chalicelib.campaigns.planner import WavePlanner
    from chalicelib.campaigns.ports import BackfillTargets, CallList, CampaignStore, OptOuts, WaveScheduler
    from chalicelib.campaigns.reach import Reach
    from chalicelib.campaigns.sender import WaveSender
    from chalicelib.campaigns.service import Campaigns
    from chalicelib.cards.lifecycle import Lifecycle
    from chalicelib.cards.ports import InventoryRepository, PartyRepository
    from chalicelib.cards.views import CallbackResult
    from chalicelib.complaints.service import Complaints
    from chalicelib.consents.account import AccountConsentLog
    from chalicelib.dealers.service import Dealers
    from chalicelib.enterprise.actions import EnterpriseActions
    from chalicelib.enterprise.agents import AccountFacts, AgentGrants
    from chalicelib.enterprise.registry import Enterprises
    from chalicelib.fleet.actual_users import ActualUsers
    from chalicelib.fleet.apply import FleetApply
    from chalicelib.fleet.batches import FleetBatches, LicenceReading
    from chalicelib.fleet.cases import FleetCases
    from chalicelib.fleet.cases_domain import FleetCase
    from chalicelib.fleet.checks import AutomaticChecks
    from chalicelib.fleet.workflow import Workflow
    from chalicelib.kernel.crypto import FieldCipher, KeyedHasher, TextSealer
    from chalicelib.operators.callbacks import CallbackReceiver
    from chalicelib.operators.dispatch import Dispatcher
    from chalicelib.operators.domain.messages import OperatorCallback
    from chalicelib.operators.ports import OperatorKeySource
    from chalicelib.operators.recovery import PushRecovery
    from chalicelib.registration.possession import PossessionPolicy
    from chalicelib.registration.review_notices import ReviewNotices
    from chalicelib.registration.service import RegistrationService
    from chalicelib.registration.spot_checks import SpotChecks
    from chalicelib.retention.service import Retention
    from chalicelib.sessions.service import Sessions
    from chalicelib.sms.codes import SmsCodeService
    from chalicelib.sms.ports import SmsSender
    from chalicelib.verification.domain.flows import Flow
    from chalicelib.verification.ports import (
        EvidenceLog,
        FaceEngine,
        FaceGate,
        FaceIndex,
        IdentityAuthority,
        LivenessEngine,
        OcrEngine,
    )
    from chalicelib.verification.service import VerificationService
    from chalicelib.verification.uploads import UploadService


def _bind_tables() -> None:
    from chalicelib.adapters.dynamo.models import bind

    bind(get_settings())


@lru_cache(maxsize=1)
def inventory_repo() -> InventoryRepository:
    from chalicelib.adapters.dynamo.inventory import DynamoInventoryRepository

    _bind_tables()
    return DynamoInventoryRepository()


@lru_cache(maxsize=1)
def field_cipher() -> FieldCipher:
    from chalicelib.adapters.crypto import KmsFieldCipher
    from chalicelib.core.aws import client

    return KmsFieldCipher(client("kms"), get_settings().pii_key_alias)


@lru_cache(maxsize=1)
def sealer() -> TextSealer:
    """One personal value (a contact phone) sealed into text under the PII key (``kernel.crypto``)."""
    from chalicelib.kernel.crypto import TextSealer

    return TextSealer(field_cipher())


@lru_cache(maxsize=1)
def keyed_hasher() -> KeyedHasher:
    from chalicelib.adapters.crypto import KmsKeyedHasher
    from chalicelib.core.aws import client

    return KmsKeyedHasher(client("kms"), get_settings().hash_key_alias)


@lru_cache(maxsize=1)
def party_repo() -> PartyRepository:
    from chalicelib.adapters.dynamo.parties import DynamoPartyRepository

    _bind_tables()
    return DynamoPartyRepository(field_cipher(), keyed_hasher())


@lru_cache(maxsize=1)
def face_engine() -> FaceEngine:
    """The stage's face engine (settings ``face_engine``)."""
    return make_face_engine(get_settings().face_engine)


def make_face_engine(kind: str) -> FaceEngine:
    if kind == "remote":
        from chalicelib.adapters.engines.remote import RemoteFaceEngine

        return RemoteFaceEngine(engine_client())
    if kind == "rekognition":
        from chalicelib.adapters.faces.rekognition import RekognitionFaceEngine
        from chalicelib.core.aws import client

        return RekognitionFaceEngine(client("rekognition"))
    from chalicelib.adapters.faces.local import LocalFaceEngine

    # The second look lies around the threshold in force.
    return LocalFaceEngine(threshold=get_settings().face_threshold)


@lru_cache(maxsize=1)
def ocr_engine() -> OcrEngine:
    """RapidOCR (PP-OCR models shipped in its wheel): in this process, or in the stage's engines function
    (settings ``ocr_engine``)."""
    if get_settings().ocr_engine == "remote":
        from chalicelib.adapters.engines.remote import RemoteOcrEngine

        return RemoteOcrEngine(engine_client())
    from chalicelib.adapters.ocr.rapidocr import RapidOcrEngine

    return RapidOcrEngine()


@lru_cache(maxsize=1)
def evidence_log() -> EvidenceLog:
    from chalicelib.adapters.dynamo.evidence import DynamoEvidenceLog

    _bind_tables()
    return DynamoEvidenceLog(field_cipher())


@lru_cache(maxsize=1)
def upload_service() -> UploadService:
    from chalicelib.adapters.s3.documents import S3DocumentStore
    from chalicelib.core.aws import client
    from chalicelib.verification.uploads import UploadService

    s = get_settings()
    return UploadService(
        S3DocumentStore(client("s3"), s.documents_bucket, s.pii_key_alias),
        face_engine(),
        min_face_px=s.face_min_px,
        max_yaw=s.face_max_yaw,
        max_pitch=s.face_max_pitch,
    )


def face_threshold() -> float:
    """The similarity threshold in force: the setting, else the engine's calibrated default."""
    configured = get_settings().face_threshold
    return configured if configured is not None else face_engine().recommended_threshold


@lru_cache(maxsize=1)
def liveness_engine() -> LivenessEngine:
    """The stage's liveness engine (settings ``liveness_engine``)."""
    s = get_settings()
    if s.liveness_engine == "rekognition":
        from chalicelib.adapters.liveness.rekognition import RekognitionLivenessEngine
        from chalicelib.core.aws import client

        return RekognitionLivenessEngine(client("rekognition"), confidence_threshold=s.liveness_confidence)
    if s.liveness_engine == "remote":
        # The engines function refuses to judge on a deployed stage that has not accepted the risk.
        from chalicelib.adapters.engines.remote import RemoteLivenessEngine

        return RemoteLivenessEngine(engine_client())
    from chalicelib.adapters.liveness.local import LocalLivenessEngine, local_engine_refused

    if not s.is_local and not s.accept_local_liveness_risk:
        raise local_engine_refused(s.stage)
    return LocalLivenessEngine(face_engine(), same_person_threshold=face_threshold())


@lru_cache(maxsize=1)
def identity_authority() -> IdentityAuthority:
    """The stage's identity authority (settings ``identity_authority``)."""
    s = get_settings()
    if s.authority_kind == "tencent":
        from chalicelib.adapters.authority.tencent import TencentIdentityAuthority, credentials_from_secret
        from chalicelib.core.aws import client

        return TencentIdentityAuthority(
            credentials_from_secret(client("secretsmanager"), s.authority_secret_name),
            region=s.authority_tencent_region,
            endpoint=s.authority_tencent_endpoint,
            timeout_seconds=s.authority_timeout_seconds,
            retries=s.authority_retries,
        )
    from chalicelib.adapters.authority.sandbox import SandboxIdentityAuthority

    return SandboxIdentityAuthority(
        s.authority_base_url, timeout_seconds=s.authority_timeout_seconds, retries=s.authority_retries
    )


@lru_cache(maxsize=1)
def face_index() -> FaceIndex:
    """The stage's index of bound faces: a Rekognition collection, or dlib descriptors in DynamoDB (in
    this process, or in the engines function when ``face_engine`` is remote)."""
    s = get_settings()
    if s.face_engine == "remote":
        from chalicelib.adapters.engines.remote import RemoteFaceIndex

        return RemoteFaceIndex(engine_client())
    from chalicelib.adapters.faces.templates import DynamoTemplateStore

    _bind_tables()
    store = DynamoTemplateStore(field_cipher())
    if s.face_engine == "rekognition":
        from chalicelib.adapters.faces.index_rekognition import RekognitionFaceIndex
        from chalicelib.core.aws import client

        return RekognitionFaceIndex(client("rekognition"), s.face_collection, store)
    from chalicelib.adapters.faces.index_local import LocalFaceIndex
    from chalicelib.adapters.faces.local import LocalFaceEngine

    engine = face_engine()
    assert isinstance(engine, LocalFaceEngine)
    return LocalFaceIndex(engine, store)


_engine_invoker_override: EngineInvoker | None = None


@lru_cache(maxsize=1)
def engine_invoker() -> EngineInvoker:
    """How the remote engines reach the engines function: Lambda, or the override in force
    (``use_engine_invoker``)."""
    if _engine_invoker_override is not None:
        return _engine_invoker_override
    from chalicelib.adapters.engines.invoker import LambdaEngineInvoker
    from chalicelib.core.aws import client

    s = get_settings()
    # Reads time out after the engines' timeout, or sooner when the function's end is nearer (a client
    # per whole second of read timeout); botocore retries nothing (the invoker decides).
    lambda_client = client("lambda", read_timeout=s.engines_timeout_seconds, retries=0, budgeted=False)
    return LambdaEngineInvoker(
        lambda_client,
        s.engines_function,
        client_for=lambda read: client("lambda", read_timeout=float(read), retries=0, budgeted=False),
        timeout_seconds=s.engines_timeout_seconds,
        connect_seconds=s.outbound_connect_timeout_seconds,
    )


def use_engine_invoker(invoker: EngineInvoker | None) -> None:
    """Call the engines function through ``invoker`` in this process (None: Lambda again); the engines,
    and the services built on them, are built again on next use. Survives ``reset``."""
    global _engine_invoker_override
    _engine_invoker_override = invoker
    for getter in (
        engine_invoker,
        engine_client,
        face_engine,
        ocr_engine,
        liveness_engine,
        face_index,
        upload_service,
        verification_service,
        registration_service,
    ):
        getter.cache_clear()


@lru_cache(maxsize=1)
def engine_client() -> EngineClient:
    """The remote engines' client: requests through ``engine_invoker``, large images staged in the
    documents bucket under ``engine-io/``."""
    from chalicelib.adapters.engines.remote import EngineClient
    from chalicelib.adapters.s3.documents import S3DocumentStore
    from chalicelib.core.aws import client

    s = get_settings()
    return EngineClient(engine_invoker(), S3DocumentStore(client("s3"), s.documents_bucket, s.pii_key_alias))


def face_gates() -> tuple[FaceGate, ...]:
    """The face gates of this stage after the authority's (which the verification service adds first)."""
    from chalicelib.verification.dedup import FaceDedupGate

    s = get_settings()
    if not s.face_dedup:
        return ()
    threshold = s.face_dedup_threshold if s.face_dedup_threshold is not None else face_threshold()
    return (FaceDedupGate(face_index(), evidence_log(), threshold),)


@lru_cache(maxsize=1)
def verification_service() -> VerificationService:
    from datetime import timedelta

    from chalicelib.adapters.dynamo.flows import (
        DynamoAttemptCounters,
        DynamoFlowRepository,
        DynamoLivenessSessions,
        DynamoReviewCases,
    )
    from chalicelib.verification.service import VerificationPolicy, VerificationService

    _bind_tables()
    s = get_settings()
    return VerificationService(
        flows=DynamoFlowRepository(field_cipher()),
        attempts=DynamoAttemptCounters(),
        sessions=DynamoLivenessSessions(),
        cases=DynamoReviewCases(),
        uploads=upload_service(),
        ocr=ocr_engine(),
        faces=face_engine(),
        liveness=liveness_engine(),
        evidence=evidence_log(),
        hasher=keyed_hasher(),
        policy=VerificationPolicy(
            face_threshold=face_threshold(),
            attempts_per_flow=s.face_attempts_per_flow,
            attempts_per_person_day=s.face_attempts_per_person_day,
            liveness_session_seconds=s.liveness_session_seconds,
            flow_ttl=timedelta(hours=s.flow_ttl_hours),
            open_flows=s.open_flows_per_owner,
        ),
        gates=face_gates(),
        authority=identity_authority(),
        authority_unavailable=s.authority_unavailable,
    )


@lru_cache(maxsize=1)
def outbox_store() -> DynamoOutboxStore:
    from chalicelib.adapters.dynamo.outbox import DynamoOutboxStore

    _bind_tables()
    return DynamoOutboxStore(field_cipher())


def _queue(short: str) -> SqsPushQueue:
    from chalicelib.adapters.dynamo.outbox import SqsPushQueue, queue_name
    from chalicelib.core.aws import client

    return SqsPushQueue(client("sqs"), queue_name(get_settings(), short))


@lru_cache(maxsize=1)
def push_queue() -> SqsPushQueue:
    from chalicelib.adapters.dynamo.outbox import OUTBOX_QUEUE

    return _queue(OUTBOX_QUEUE)


@lru_cache(maxsize=1)
def dead_letter_queue() -> SqsPushQueue:
    from chalicelib.adapters.dynamo.outbox import OUTBOX_DEAD_LETTER_QUEUE

    return _queue(OUTBOX_DEAD_LETTER_QUEUE)


@lru_cache(maxsize=1)
def lifecycle() -> Lifecycle:
    from chalicelib.cards.domain.inventory import CardFunction
    from chalicelib.cards.lifecycle import Lifecycle

    defaults = [CardFunction(f) for f in get_settings().default_functions]
    return Lifecycle(
        inventory_repo(),
        outbox_store(),
        push_queue(),
        default_functions=defaults,
        on_service_end=lambda ends: retention().record_ends(ends),
    )


@lru_cache(maxsize=1)
def retention() -> Retention:
    """第十八条: service ends recorded against the holder, and the purge of what is due."""
    from chalicelib.adapters.dynamo.retention import DynamoMaterials, DynamoRetentionStore
    from chalicelib.adapters.s3.documents import S3DocumentStore
    from chalicelib.core.aws import client
    from chalicelib.retention.domain import RetentionPolicy
    from chalicelib.retention.service import Retention

    _bind_tables()
    s = get_settings()
    documents = S3DocumentStore(client("s3"), s.documents_bucket, s.pii_key_alias)
    return Retention(
        DynamoRetentionStore(),
        DynamoMaterials(documents, evidence_log()),
        policy=RetentionPolicy(years=s.retention_years, face_years=s.retention_face_years),
        gates=face_gates(),
    )


@lru_cache(maxsize=1)
def operator_keys() -> OperatorKeySource:
    from chalicelib.adapters.operator.secrets import SecretsManagerKeySource
    from chalicelib.core.aws import client

    return SecretsManagerKeySource(client("secretsmanager"), get_settings().operator_secret_pattern)


@lru_cache(maxsize=1)
def operator_gateway() -> HttpOperatorGateway:
    from chalicelib.adapters.operator.http import HttpOperatorGateway
    from chalicelib.kernel.operators import Operator

    s = get_settings()
    urls = {Operator(op): url for op, url in s.operator_urls().items()}
    return HttpOperatorGateway(urls, operator_keys(), timeout_seconds=s.operator_timeout_seconds)


@lru_cache(maxsize=1)
def operator_nonces() -> DynamoNonces:
    """Nonces of operator callbacks, kept twice the signature window (replays inside it are refused)."""
    from chalicelib.adapters.dynamo.nonces import DynamoNonces

    _bind_tables()
    return DynamoNonces(keep_seconds=2 * get_settings().operator_signature_window_seconds)


@lru_cache(maxsize=1)
def operator_callbacks() -> CallbackReceiver:
    from chalicelib.operators.callbacks import CallbackReceiver

    s = get_settings()
    return CallbackReceiver(
        operator_keys(),
        operator_nonces().seen,
        _apply_callback,
        lambda message_id: registration_service().on_push_result(message_id),
        spot_check=lambda callback: spot_checks().receive(callback),
        path=s.operator_callback_path,
        window_seconds=s.operator_signature_window_seconds,
    )


@lru_cache(maxsize=1)
def spot_checks() -> SpotChecks:
    """抽查 (第十条): the operators' spot checks as cases for the OEM's reviewers."""
    from datetime import timedelta

    from chalicelib.adapters.dynamo.registrations import DynamoRegistrationRepository
    from chalicelib.adapters.dynamo.spot_checks import DynamoSpotChecks
    from chalicelib.cards.commit import Ledger
    from chalicelib.cards.domain.inventory import CardFunction
    from chalicelib.registration.spot_checks import SpotChecks

    _bind_tables()
    s = get_settings()
    ledger = Ledger(
        inventory_repo(),
        outbox_store(),
        push_queue(),
        default_functions=[CardFunction(f) for f in s.default_functions],
    )
    return SpotChecks(
        DynamoSpotChecks(),
        DynamoRegistrationRepository(field_cipher()),
        ledger,
        _apply_callback,
        answer_within=timedelta(days=s.spot_check_answer_days),
    )


@lru_cache(maxsize=1)
def dispatcher() -> Dispatcher:
    from chalicelib.operators.dispatch import Dispatcher

    return Dispatcher(outbox_store(), operator_gateway(), push_queue(), dead_letters=dead_letter_queue())


def push_recovery() -> PushRecovery:
    """The scheduled reconciliation of unanswered pushes (built from the cached parts on each call)."""
    from datetime import timedelta

    from chalicelib.operators.recovery import PushRecovery

    s = get_settings()
    return PushRecovery(
        outbox_store(),
        operator_gateway(),
        push_queue(),
        _apply_callback,
        lambda message_id: registration_service().on_push_result(message_id),
        stale_after=timedelta(minutes=s.push_stale_minutes),
        drift_after=timedelta(minutes=s.push_drift_minutes),
    )


@lru_cache(maxsize=1)
def sms_drop() -> LocalSmsDrop:
    """The local SMS drop (S3 objects under ``dev/sms-drop/`` of the documents bucket)."""
    from chalicelib.adapters.sms.local import LocalSmsDrop
    from chalicelib.core.aws import client

    return LocalSmsDrop(client("s3"), get_settings().documents_bucket)


@lru_cache(maxsize=1)
def sms_sender() -> SmsSender:
    """The stage's SMS channel: the SMS drop on local stages, SNS elsewhere (settings ``sms_sender``)."""
    s = get_settings()
    kind = s.sms_sender or ("drop" if s.is_local else "sns")
    if kind == "drop":
        return sms_drop()
    from chalicelib.adapters.sms.sns import SnsSmsSender
    from chalicelib.core.aws import client

    # Publish is not idempotent: a retry after a lost reply would send the person the code twice.
    return SnsSmsSender(client("sns", retries=0), sender_id=s.sms_sender_id)


@lru_cache(maxsize=1)
def sessions() -> Sessions:
    """Sign-in sessions: refresh tokens kept as keyed hashes in ``sessions``, rotated on every use."""
    from datetime import timedelta

    from chalicelib.adapters.dynamo.sessions import DynamoSessionStore
    from chalicelib.sessions.domain import SessionPolicy
    from chalicelib.sessions.service import Sessions

    _bind_tables()
    s = get_settings()
    policy = SessionPolicy(
        idle=timedelta(seconds=s.session_idle_seconds),
        max_age=timedelta(seconds=s.session_max_age_seconds),
        reuse_grace=timedelta(seconds=s.session_reuse_grace_seconds),
    )
    return Sessions(DynamoSessionStore(), keyed_hasher(), policy=policy)


@lru_cache(maxsize=1)
def sms_code_service() -> SmsCodeService:
    from datetime import timedelta

    from chalicelib.adapters.captcha.dynamo import DynamoChallengeStore
    from chalicelib.adapters.sms.dynamo import DynamoSmsCodeStore
    from chalicelib.adapters.sms.limits import DynamoSmsLimitStore
    from chalicelib.captcha.service import LocalCaptcha
    from chalicelib.sms.codes import SmsCodeService
    from chalicelib.sms.domain import SmsPolicy
    from chalicelib.sms.limits import ClientPolicy

    _bind_tables()
    s = get_settings()
    policy = SmsPolicy(
        validity=timedelta(seconds=s.sms_code_ttl_seconds),
        resend_interval=timedelta(seconds=s.sms_resend_seconds),
        max_wrong_tries=s.sms_max_wrong_tries,
        sends_per_day=s.sms_sends_per_phone_purpose_day,
        sends_per_phone_day=s.sms_sends_per_phone_day,
        sends_per_phone_signed_in_day=s.sms_sends_per_phone_signed_in_day,
    )
    clients = ClientPolicy(
        per_ip_hour=s.sms_sends_per_ip_hour,
        per_ip_day=s.sms_sends_per_ip_day,
        per_device_hour=s.sms_sends_per_device_hour,
        per_device_day=s.sms_sends_per_device_day,
        captcha_after=s.captcha_after_sends,
        budget_per_hour=s.sms_global_budget_per_hour,
        per_caller_hour=s.sms_sends_per_caller_hour,
        per_caller_day=s.sms_sends_per_caller_day,
        tries_per_ip_hour=s.sms_wrong_tries_per_ip_hour,
        tries_per_ip_day=s.sms_wrong_tries_per_ip_day,
        tries_per_device_hour=s.sms_wrong_tries_per_device_hour,
        tries_per_device_day=s.sms_wrong_tries_per_device_day,
    )
    # The local captcha; a deployed stage may put a provider's behind the same port (captcha.ports).
    captcha = LocalCaptcha(
        DynamoChallengeStore(), keyed_hasher(), ttl=timedelta(seconds=s.captcha_ttl_seconds)
    )
    return SmsCodeService(
        DynamoSmsCodeStore(),
        sms_sender(),
        keyed_hasher(),
        policy=policy,
        limits=DynamoSmsLimitStore(),
        captcha=captcha,
        client_policy=clients,
        captcha_issues_per_hour=s.captcha_issues_per_ip_hour,
    )


@lru_cache(maxsize=1)
def registration_service() -> RegistrationService:
    from datetime import timedelta

    from chalicelib.adapters.dynamo.registrations import DynamoRegistrationRepository
    from chalicelib.adapters.dynamo.step_writes import DynamoStepWrites
    from chalicelib.registration.service import RegistrationService

    _bind_tables()
    verification = verification_service()
    return RegistrationService(
        DynamoRegistrationRepository(field_cipher()),
        inventory_repo(),
        party_repo(),
        verification,
        lifecycle(),
        sms_code_service(),
        keyed_hasher(),
        sms_sender(),
        vehicles=vehicle_channel(),
        possession=possession_policy(),
        flow_ttl=timedelta(hours=get_settings().flow_ttl_hours),
        phone_holders=verification.authority,
        on_submitted=lambda registration_id, parties: retention().hold(registration_id, parties),
        push_late_after=timedelta(minutes=get_settings().push_stale_minutes),
        open_registrations=get_settings().open_registrations_per_owner,
        step_writes=DynamoStepWrites(field_cipher()),
    )


def review_notices() -> ReviewNotices:
    """The SMS to the owner when a reviewer decides their case (built from the cached adapters)."""
    from chalicelib.adapters.dynamo.registrations import DynamoRegistrationRepository
    from chalicelib.registration.review_notices import ReviewNotices

    _bind_tables()
    return ReviewNotices(DynamoRegistrationRepository(field_cipher()), sms_sender())


@lru_cache(maxsize=1)
def vehicle_channel() -> SandboxVehicleChannel:
    """The car's telematics (head-unit codes): the sandbox drop under ``dev/head-unit/`` of the
    documents bucket (settings ``vehicle_channel``)."""
    from chalicelib.adapters.vehicle.sandbox import SandboxVehicleChannel
    from chalicelib.core.aws import client

    return SandboxVehicleChannel(client("s3"), get_settings().documents_bucket)


def possession_policy() -> PossessionPolicy:
    from datetime import timedelta

    from chalicelib.registration.domain.registrations import PossessionMethod
    from chalicelib.registration.possession import PossessionPolicy

    s = get_settings()
    return PossessionPolicy(
        methods=frozenset(PossessionMethod(m) for m in s.possession_methods),
        code_ttl=timedelta(seconds=s.head_unit_code_ttl_seconds),
        resend_interval=timedelta(seconds=s.head_unit_resend_seconds),
        max_sends=s.head_unit_max_sends,
        max_wrong_tries=s.head_unit_max_wrong_tries,
    )


@lru_cache(maxsize=1)
def complaints() -> Complaints:
    from chalicelib.adapters.dynamo.complaints import DynamoComplaintStore
    from chalicelib.complaints.service import Complaints

    _bind_tables()
    return Complaints(DynamoComplaintStore(field_cipher()), per_day=get_settings().complaints_per_day)


@lru_cache(maxsize=1)
def account_consents() -> AccountConsentLog:
    from chalicelib.adapters.dynamo.complaints import DynamoAccountConsentLog

    _bind_tables()
    return DynamoAccountConsentLog()


@lru_cache(maxsize=1)
def enterprises() -> Enterprises:
    """The enterprise registry (one legal-person account per USCC)."""
    from chalicelib.adapters.dynamo.enterprise import DynamoEnterpriseStore
    from chalicelib.enterprise.registry import Enterprises

    _bind_tables()
    return Enterprises(DynamoEnterpriseStore(field_cipher()))


@lru_cache(maxsize=1)
def enterprise_actions() -> EnterpriseActions:
    """The enterprise action log (every action for an enterprise under the name of who took it)."""
    from chalicelib.adapters.dynamo.agents import DynamoActionStore
    from chalicelib.enterprise.actions import EnterpriseActions

    _bind_tables()
    return EnterpriseActions(DynamoActionStore(), account_of=account_facts)


def account_facts(account_id: str) -> AccountFacts | None:
    """What the enterprise and dealer contexts need of a portal account, read now from its store."""
    from chalicelib.enterprise.agents import AccountFacts

    account = accounts().get(account_id)
    if account is None:
        return None
    real_name = account.real_name
    return AccountFacts(
        account_id=account.account_id,
        login_name=account.login_name,
        kind=account.kind.value,
        active=account.active,
        name_masked=real_name.display_name_masked if real_name else "",
        enterprise_uscc=account.enterprise_uscc,
        dealer_code=account.dealer_code,
    )


@lru_cache(maxsize=1)
def agent_grants() -> AgentGrants:
    """Agents (经办人) of enterprises: applications, decisions, and who acts for which enterprise."""
    from chalicelib.adapters.dynamo.agents import DynamoGrantStore
    from chalicelib.enterprise.agents import AgentGrants

    _bind_tables()
    return AgentGrants(
        DynamoGrantStore(),
        enterprise_actions(),
        account_of=account_facts,
        enterprise_of=lambda uscc: enterprises().get(uscc),
        end_sessions=lambda account_id: sessions().revoke_subject(account_id),
    )


@lru_cache(maxsize=1)
def read_log() -> ReadLog:
    """The personal-data read log (查阅日志): every read in clear recorded before it is answered."""
    from chalicelib.adapters.dynamo.audit import DynamoReadLogStore
    from chalicelib.audit.service import ReadLog

    _bind_tables()
    return ReadLog(DynamoReadLogStore(), retention_years=get_settings().read_log_retention_years)


@lru_cache(maxsize=1)
def opt_outs() -> OptOuts:
    """Phones that asked for no more backfill campaign messages (``campaign-opt-outs``)."""
    from chalicelib.adapters.dynamo.campaign_reach import DynamoOptOuts

    _bind_tables()
    return DynamoOptOuts()


@lru_cache(maxsize=1)
def call_list() -> CallList:
    """The backfill campaigns' call list (``campaign-calls``)."""
    from chalicelib.adapters.dynamo.campaign_reach import DynamoCallList

    _bind_tables()
    return DynamoCallList()


@lru_cache(maxsize=1)
def campaign_reach() -> Reach:
    """Opt-outs (reply keyword, the owner's link), the owner's backfill notice and the call list."""
    from chalicelib.campaigns.reach import Reach
    from chalicelib.registration.domain.registrations import PossessionMethod

    return Reach(
        opt_outs=opt_outs(),
        calls=call_list(),
        targets=backfill_targets(),
        campaigns=campaign_store(),
        sealer=sealer(),
        phone_hash=sms_code_service().phone_hash,
        reply_key=get_settings().sms_reply_signing_key,
        inventory=inventory_repo(),
        sales_phone_proves=PossessionMethod.SALES_PHONE in possession_policy().methods,
    )


@lru_cache(maxsize=1)
def campaign_store() -> CampaignStore:
    """The backfill campaigns (``campaigns``)."""
    from chalicelib.adapters.dynamo.campaigns import DynamoCampaignStore

    _bind_tables()
    return DynamoCampaignStore()


@lru_cache(maxsize=1)
def wave_scheduler() -> WaveScheduler:
    """One EventBridge schedule per backfill wave, sending its start to the campaign-waves queue."""
    from chalicelib.adapters.scheduler import EventBridgeWaveScheduler
    from chalicelib.core.aws import client
    from chalicelib.core.resources import (
        CAMPAIGN_WAVES_DEAD_LETTER_QUEUE_ID,
        CAMPAIGN_WAVES_QUEUE_ID,
        declare,
    )

    settings = get_settings()
    role = settings.campaign_scheduler_role_arn
    if not role:
        if not settings.is_local:  # the stack sets it from the role it creates (infra.campaigns)
            raise RuntimeError("campaign_scheduler_role_arn is not set: deploy the stage with infra/")
        # The embedded AWS takes any well-formed role.
        role = f"arn:aws:iam::000000000000:role/{settings.resource_prefix}-{settings.stage}-scheduler"
    return EventBridgeWaveScheduler(
        client("scheduler"),
        client("sqs"),
        group=settings.campaign_schedules_group,
        queue_name=declare(settings).queue(CAMPAIGN_WAVES_QUEUE_ID).name,
        role_arn=role,
        dead_letter_queue_name=declare(settings).queue(CAMPAIGN_WAVES_DEAD_LETTER_QUEUE_ID).name,
    )


@lru_cache(maxsize=1)
def campaigns() -> Campaigns:
    """Backfill campaigns: define, pause, resume, stop, start a wave, progress."""
    from chalicelib.campaigns.service import Campaigns

    settings = get_settings()
    return Campaigns(
        campaign_store(),
        wave_scheduler(),
        send_ledger(),
        campaign_waves_queue(),
        backfill_targets(),
        link=settings.campaign_message_link,
        max_chars=settings.campaign_sms_max_chars,
        max_rate=settings.campaign_max_rate,
    )


@lru_cache(maxsize=1)
def password_hashing() -> PasswordHashing:
    """argon2id with the stage's cost (settings ``password_*``)."""
    from chalicelib.accounts.passwords import Argon2Parameters, Argon2Passwords

    s = get_settings()
    return Argon2Passwords(
        Argon2Parameters(
            time_cost=s.password_time_cost,
            memory_cost_kib=s.password_memory_kib,
            parallelism=s.password_parallelism,
        )
    )


def _agent_enterprise(account_id: str) -> str | None:
    """The enterprise an account is an approved agent of (the agents' grants)."""
    return agent_grants().active_for(account_id)


def _legal_account(uscc: str) -> str | None:
    """The legal-person account of an enterprise (the enterprise registry)."""
    enterprise = enterprises().get(uscc)
    return enterprise.legal_account_id if enterprise is not None else None


@lru_cache(maxsize=1)
def accounts() -> Accounts:
    """Enterprise-portal accounts: sign-up, login with lockout, sessions, passwords."""
    from datetime import timedelta

    from chalicelib.accounts.domain import LockoutPolicy
    from chalicelib.accounts.service import Accounts
    from chalicelib.adapters.dynamo.accounts import DynamoAccountStore, DynamoChallengeStore, DynamoGuardStore
    from chalicelib.adapters.dynamo.sessions import DynamoSessionStore

    _bind_tables()
    s = get_settings()
    return Accounts(
        DynamoAccountStore(field_cipher()),
        DynamoGuardStore(),
        DynamoChallengeStore(),
        password_hashing(),
        sms_code_service(),
        sessions(),
        DynamoSessionStore(),
        keyed_hasher(),
        lockout=LockoutPolicy(
            threshold=s.account_lock_threshold,
            first_lock=timedelta(seconds=s.account_lock_seconds),
            cap=timedelta(seconds=s.account_lock_cap_seconds),
        ),
        max_accounts_per_phone=s.accounts_per_phone,
        agent_of=_agent_enterprise,
        legal_account_of=_legal_account,
    )


@lru_cache(maxsize=1)
def real_name() -> RealNames:
    """Real-name authentication of accounts (natural and legal persons) over the verification flows."""
    from datetime import timedelta

    from chalicelib.accounts.realname import RealNames
    from chalicelib.adapters.dynamo.enterprise import DynamoApplicationStore

    _bind_tables()
    return RealNames(
        accounts=accounts(),
        enterprises=enterprises(),
        verification=verification_service(),
        applications=DynamoApplicationStore(),
        evidence=evidence_log(),
        # The flow is the evidence of the real-name: kept as long as registration evidence is.
        evidence_kept=timedelta(days=366 * get_settings().retention_years),
    )


@lru_cache(maxsize=1)
def staff_revocations() -> DynamoStaffRevocations:
    """Staff sign-ins ended by a logout (checked on every request of a staff IdP token)."""
    from chalicelib.adapters.dynamo.staff import DynamoStaffRevocations

    _bind_tables()
    return DynamoStaffRevocations()


@lru_cache(maxsize=1)
def dealers() -> Dealers:
    """Dealers (第二十条): their vehicles, the on-the-spot hand-off, the registry of dealer accounts."""
    from datetime import timedelta

    from chalicelib.adapters.dynamo.dealers import (
        DynamoDealerAccountRegistry,
        DynamoDealerVehicles,
        DynamoHandoffStore,
    )
    from chalicelib.dealers.service import Dealers

    _bind_tables()
    return Dealers(
        DynamoDealerVehicles(),
        DynamoHandoffStore(),
        DynamoDealerAccountRegistry(),
        inventory_repo(),
        keyed_hasher(),
        account_of=account_facts,
        handoff_ttl=timedelta(seconds=get_settings().dealer_handoff_ttl_seconds),
    )


@lru_cache(maxsize=1)
def backfill_targets() -> BackfillTargets:
    """The backfill index (补登记): cards in service and not registered, by shard and by contact."""
    from chalicelib.adapters.dynamo.backfill import DynamoBackfillTargets

    _bind_tables()
    return DynamoBackfillTargets()


def in_service_import() -> InServiceImport:
    """The OEM's in-service feed onto the cards (phones sealed and hashed as the owner's login does)."""
    from chalicelib.adapters.dynamo.backfill import DynamoInServiceCards
    from chalicelib.adapters.dynamo.dealers import DynamoDealerVehicles
    from chalicelib.campaigns.in_service import InServiceImport

    _bind_tables()
    return InServiceImport(
        inventory_repo(),
        DynamoInServiceCards(),
        phone_hash=sms_code_service().phone_hash,
        seal=sealer().seal,
        known_dealer=DynamoDealerVehicles().any_of,
        retired=lambda iccids: {i for i, life in outbox_store().lifecycles(iccids).items() if life.retired},
    )


@lru_cache(maxsize=1)
def workflow() -> Workflow:
    """The fleet review workflow (Step Functions; moto's locally): the state machine by the ARN infra
    sets, else by its declared name."""
    from chalicelib.adapters.stepfunctions import StepFunctionsWorkflow
    from chalicelib.core.aws import client
    from chalicelib.core.resources import FLEET_REVIEW_STATE_MACHINE_ID, declare

    s = get_settings()
    return StepFunctionsWorkflow(
        client("stepfunctions"),
        state_machine_arn=s.fleet_state_machine_arn,
        state_machine_name=declare(s).state_machine(FLEET_REVIEW_STATE_MACHINE_ID).name,
    )


@lru_cache(maxsize=1)
def fleet_cases() -> FleetCases:
    """Review cases of fleet batches (单位批次审核): deadlines in China working days, four-eyes, conflicts
    of interest, the workflow's task tokens."""
    from chalicelib.adapters.dynamo.fleet_cases import DynamoFleetCases, DynamoStaffAffiliations
    from chalicelib.core import lazy
    from chalicelib.fleet.cases import FleetCases
    from chalicelib.fleet.deadlines import window_from_settings

    _bind_tables()
    s = get_settings()
    return FleetCases(
        DynamoFleetCases(),
        DynamoStaffAffiliations(),
        field_cipher(),
        lazy.instance(lambda: fleet_batches()),
        workflow,
        window=lambda now: window_from_settings(now, get_settings()),
        four_eyes_vehicles=s.fleet_four_eyes_vehicles,
        evidence=evidence_log(),
        alert_leads=_alert_fleet_leads,
    )


def _alert_fleet_leads(case: FleetCase) -> None:
    """An escalated fleet case announced to the review leads: a log line, and an SMS to their duty
    phone when one is configured (a failed SMS is logged: the case is in the leads' queue anyway)."""
    from chalicelib.core.observability import logger

    logger.warning("fleet case escalated to the review leads", extra={"batch_id": case.batch_id})
    phone = get_settings().fleet_review_lead_phone
    if not phone:
        return
    try:
        sms_sender().send(
            phone, f"【车卡实名】单位批次 {case.batch_id} 已超过审核时限，已升级至审核组长，请尽快处理。"
        )
    except Exception:  # the escalation stands without its SMS
        logger.exception("the review leads' SMS about an escalated fleet case failed")


@lru_cache(maxsize=1)
def actual_users() -> ActualUsers:
    """实际使用人 of enterprise cards and the enterprise's vehicles; changes pushed to the operators that
    want them (``Settings.actual_user_operators``)."""
    from chalicelib.adapters.dynamo.actual_users import DynamoActualUsers
    from chalicelib.fleet.actual_users import ActualUsers, wanting_operators

    _bind_tables()
    return ActualUsers(
        DynamoActualUsers(field_cipher(), outbox_store()),
        inventory_repo(),
        outbox_store(),
        push_queue(),
        keyed_hasher(),
        wanting=wanting_operators(get_settings().actual_user_operators()),
    )


def fleet_automatic_checks() -> AutomaticChecks:
    """The automatic checks of a submitted fleet batch, over the cached services and stores."""
    from chalicelib.adapters.dynamo.fleet import DynamoBatchStore
    from chalicelib.fleet.apply import enterprise_id_hash
    from chalicelib.fleet.checks import AutomaticChecks
    from chalicelib.verification.domain.ocr import parse_business_licence

    verification = verification_service()
    return AutomaticChecks(
        batches=fleet_batches(),
        cases=fleet_cases(),
        find_flow=verification.flows.find,
        enterprise_of=enterprises().get,
        read_document=upload_service().read,
        read_licence=lambda photo: parse_business_licence(ocr_engine().read(photo)),
        inventory=inventory_repo(),
        counts=outbox_store(),
        enterprise_hash=lambda uscc: enterprise_id_hash(keyed_hasher(), uscc),
        claims=DynamoBatchStore(field_cipher()).claims,
    )


def fleet_apply() -> FleetApply:
    """An approved fleet batch's cards registered through the outbox, and the enterprise's notices."""
    from chalicelib.fleet.apply import FleetApply

    verification = verification_service()
    return FleetApply(
        batches=fleet_batches(),
        find_flow=verification.flows.find,
        enterprise_of=enterprises().get,
        parties=party_repo(),
        lifecycle=lifecycle(),
        inventory=inventory_repo(),
        bookkeeping=outbox_store(),
        hasher=keyed_hasher(),
        sms=sms_sender(),
        phone_of=accounts().phone_of,
        note=verification.note,
        notices_sent=_fleet_notices_sent,
    )


def _fleet_notices_sent(flow_id: str) -> list[dict[str, Any]]:
    """The fleet notices a batch flow's evidence already records (their public details)."""
    from chalicelib.verification.domain.evidence import EvidenceKind

    return [e.public for e in evidence_log().entries(flow_id) if e.kind is EvidenceKind.SMS_SENT]


def _provide_fleet_services() -> None:
    """The fleet task handlers find their services here (``chalicelib.fleet.wiring``)."""
    from chalicelib.fleet import wiring

    wiring.provide("fleet_automatic_checks", fleet_automatic_checks)
    wiring.provide("fleet_apply", fleet_apply)
    wiring.provide("fleet_cases", fleet_cases)


_provide_fleet_services()


@lru_cache(maxsize=1)
def fleet_batches() -> FleetBatches:
    """Fleet batches of enterprises (单位登记 / 解除登记): built, submitted, resubmitted."""
    from chalicelib.adapters.dynamo.fleet import DynamoBatchStore, InventoryFleetFacts
    from chalicelib.consents.domain import AGREEMENTS
    from chalicelib.consents.texts import current_consent
    from chalicelib.fleet.batches import FleetBatches

    _bind_tables()
    verification = verification_service()

    def company_of(uscc: str) -> str | None:
        enterprise = enterprises().get(uscc)
        return enterprise.company_name if enterprise else None

    return FleetBatches(
        DynamoBatchStore(field_cipher()),
        inventory=InventoryFleetFacts(inventory_repo(), party_repo()),
        flows=verification.flows,
        codes=sms_code_service(),
        actions=enterprise_actions(),
        acting=lambda principal: agent_grants().acting_enterprise(principal),
        company_of=company_of,
        read_licence=_read_licence,
        workflow=lambda: workflow(),
        resubmitted=lambda batch_id: fleet_cases().resubmitted(batch_id),
        consent_versions=lambda: {k.value: current_consent(k).version for k in AGREEMENTS},
    )


def _read_licence(flow: Flow) -> LicenceReading:
    """The business licence of a flow as read: once its OCR check passed, the reading agreed (field by
    field) with the code and name the flow holds, which are then its reading; else read now."""
    from chalicelib.fleet.batches import LicenceReading
    from chalicelib.verification.domain.documents import DocumentKind
    from chalicelib.verification.domain.flows import CheckName, CheckVerdict
    from chalicelib.verification.domain.ocr import parse_business_licence

    identity = flow.identity
    if flow.checks.get(CheckName.OCR_BUSINESS_LICENCE) is CheckVerdict.PASSED and identity is not None:
        return LicenceReading(uscc=identity.uscc, company_name=identity.company_name)
    key = flow.documents.get(DocumentKind.BUSINESS_LICENCE.value)
    if key is None:
        return LicenceReading(uscc=None, company_name=None)
    licence = parse_business_licence(ocr_engine().read(upload_service().read(key)))
    return LicenceReading(uscc=licence.uscc.upper() if licence.uscc else None, company_name=licence.name)


@lru_cache(maxsize=1)
def send_ledger() -> DynamoSendLedger:
    """What each backfill wave did with each card, its counters and plan cursors (``campaign-sends``,
    ``campaign-waves``)."""
    from chalicelib.adapters.dynamo.campaign_sends import DynamoSendLedger

    _bind_tables()
    return DynamoSendLedger()


@lru_cache(maxsize=1)
def rate_limiter() -> DynamoRateLimiter:
    """The backfill campaigns' token buckets, shared by every sender (``campaign-waves``)."""
    from chalicelib.adapters.dynamo.campaign_sends import DynamoRateLimiter

    _bind_tables()
    return DynamoRateLimiter()


def _campaign_queue(queue_id: str) -> SqsCampaignQueue:
    from chalicelib.adapters.campaign_queues import SqsCampaignQueue
    from chalicelib.core.aws import client
    from chalicelib.core.resources import declare

    return SqsCampaignQueue(client("sqs"), declare(get_settings()).queue(queue_id).name)


@lru_cache(maxsize=1)
def campaign_waves_queue() -> SqsCampaignQueue:
    """Wave starts and shard plans (``campaign-waves``)."""
    from chalicelib.core.resources import CAMPAIGN_WAVES_QUEUE_ID

    return _campaign_queue(CAMPAIGN_WAVES_QUEUE_ID)


@lru_cache(maxsize=1)
def campaign_sends_queue() -> SqsCampaignQueue:
    """Batches of targets to message (``campaign-sends``)."""
    from chalicelib.core.resources import CAMPAIGN_SENDS_QUEUE_ID

    return _campaign_queue(CAMPAIGN_SENDS_QUEUE_ID)


def wave_planner() -> WavePlanner:
    """A backfill wave's planner of one shard (built per message: it times its own run)."""
    import time

    from chalicelib.campaigns.planner import WavePlanner

    _bind_tables()
    s = get_settings()
    return WavePlanner(
        targets=backfill_targets(),
        campaigns=campaign_store(),
        ledger=send_ledger(),
        sends=campaign_sends_queue(),
        on_planned=campaigns().mark_planned,
        timer=time.monotonic,
        targets_per_message=s.campaign_targets_per_message,
        page_size=s.campaign_plan_page,
        budget_seconds=s.campaign_planner_budget_seconds,
    )


@lru_cache(maxsize=1)
def wave_sender() -> WaveSender:
    """A backfill wave's sender: one queued batch of targets at a time, through the campaign's bucket."""
    import time

    from chalicelib.campaigns.sender import WaveSender
    from chalicelib.kernel.clock import utc_now

    _bind_tables()
    s = get_settings()
    return WaveSender(
        targets=backfill_targets(),
        campaigns=campaign_store(),
        ledger=send_ledger(),
        rate=rate_limiter(),
        opt_outs=opt_outs(),
        calls=call_list(),
        sms=sms_sender(),
        open_phone=sealer().open,
        clock=utc_now,
        sleep=time.sleep,
        link=s.campaign_message_link,
        retries=s.campaign_send_retries,
        paused_recheck_seconds=s.campaign_paused_recheck_seconds,
    )


def _campaign_window_days(campaign_id: str) -> int | None:
    campaign = campaign_store().get(campaign_id)
    return None if campaign is None else campaign.attribution_days


def _apply_callback(callback: OperatorCallback) -> CallbackResult:
    """The cards' answer use case, then the campaigns' attribution of a registration it made (best
    effort: ``campaigns.attribution.after_callback`` never raises)."""
    from chalicelib.campaigns.attribution import after_callback
    from chalicelib.kernel.clock import utc_now

    result = lifecycle().apply_callback(callback)
    after_callback(result, send_ledger, _campaign_window_days, utc_now)
    return result


def reset() -> None:
    """Forget every cached adapter, client and the settings (tests change the environment)."""
    from chalicelib.core import aws, oidc, token_keys

    oidc.reset()
    token_keys.reset()

    for getter in (
        inventory_repo,
        field_cipher,
        sealer,
        keyed_hasher,
        party_repo,
        face_engine,
        ocr_engine,
        engine_invoker,
        engine_client,
        evidence_log,
        upload_service,
        liveness_engine,
        identity_authority,
        face_index,
        verification_service,
        outbox_store,
        push_queue,
        dead_letter_queue,
        lifecycle,
        retention,
        operator_keys,
        operator_gateway,
        dispatcher,
        operator_nonces,
        operator_callbacks,
        spot_checks,
        sms_drop,
        sms_sender,
        sms_code_service,
        sessions,
        registration_service,
        vehicle_channel,
        complaints,
        account_consents,
        password_hashing,
        accounts,
        read_log,
        enterprises,
        real_name,
        enterprise_actions,
        agent_grants,
        staff_revocations,
        opt_outs,
        call_list,
        campaign_reach,
        campaign_store,
        wave_scheduler,
        campaigns,
        dealers,
        backfill_targets,
        send_ledger,
        rate_limiter,
        campaign_waves_queue,
        campaign_sends_queue,
        wave_sender,
        actual_users,
        workflow,
        fleet_cases,
        fleet_batches,
    ):
        getter.cache_clear()
    aws.reset()


def _token_key_client() -> Any:
    """The Secrets Manager client the token keys are read with (``chalicelib.core.token_keys``)."""
    from chalicelib.core.aws import client

    return client("secretsmanager")


def _install_token_key_client() -> None:
    from chalicelib.core import token_keys

    token_keys.install_client_factory(_token_key_client)


_install_token_key_client()
