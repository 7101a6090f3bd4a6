"""Lazy, cached dependency getters: adapters are built on first use, never at import time."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from chalicelib.core.settings import get_settings

if TYPE_CHECKING:
    from chalicelib.adapters.evidence_port import EvidenceLog
    from chalicelib.adapters.faces.port import FaceEngine
    from chalicelib.adapters.liveness.port import LivenessEngine
    from chalicelib.adapters.ocr.port import OcrEngine
    from chalicelib.adapters.ports import FieldCipher, InventoryRepository, KeyedHasher, PartyRepository
    from chalicelib.services.uploads import UploadService
    from chalicelib.services.verification import VerificationService


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
    if kind == "rekognition":
        from chalicelib.adapters.faces.rekognition import RekognitionFaceEngine
        from chalicelib.core.aws import client

        return RekognitionFaceEngine(client("rekognition"))
    from chalicelib.adapters.faces.local import LocalFaceEngine

    return LocalFaceEngine()


@lru_cache(maxsize=1)
def ocr_engine() -> OcrEngine:
    """RapidOCR (PP-OCR models shipped in its wheel): the engine locally and in production alike."""
    from chalicelib.adapters.ocr.rapidocr import RapidOcrEngine

    return RapidOcrEngine()


@lru_cache(maxsize=1)
def evidence_log() -> EvidenceLog:
    from chalicelib.adapters.dynamo.evidence import DynamoEvidenceLog

    _bind_tables()
    return DynamoEvidenceLog(field_cipher())


@lru_cache(maxsize=1)
def upload_service() -> UploadService:
    from chalicelib.core.aws import client
    from chalicelib.services.uploads import UploadService

    s = get_settings()
    return UploadService(
        client("s3"),
        s.documents_bucket,
        s.pii_key_alias,
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
    from chalicelib.adapters.liveness.local import LocalLivenessEngine

    return LocalLivenessEngine(face_engine(), same_person_threshold=face_threshold())


@lru_cache(maxsize=1)
def verification_service() -> VerificationService:
    from datetime import timedelta

    from chalicelib.adapters.dynamo.flows import (
        DynamoAttemptCounters,
        DynamoFlowRepository,
        DynamoLivenessSessions,
        DynamoReviewCases,
    )
    from chalicelib.services.verification import VerificationPolicy, VerificationService

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
        ),
    )


def reset() -> None:
    """Forget every cached adapter, client and the settings (tests change the environment)."""
    from chalicelib.core import aws

    for getter in (
        inventory_repo,
        field_cipher,
        keyed_hasher,
        party_repo,
        face_engine,
        ocr_engine,
        evidence_log,
        upload_service,
        liveness_engine,
        verification_service,
    ):
        getter.cache_clear()
    aws.reset()
