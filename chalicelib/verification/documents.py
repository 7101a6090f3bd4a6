"""Document photos of a flow (SPEC §8): upload them safely, read them (OCR) and cross-check the reading
with what the person typed, field by field.

Bad input raises before anything is written: a refused photo is never kept (the refusal goes into the
evidence), a mismatching ID card is not accepted. What a person may upload changes once a face check
has started (``check_replaceable``): the face verdict must stay about the portrait it was made against.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from chalicelib.kernel.clock import Clock, china_day, utc_now
from chalicelib.kernel.errors import Conflict, DomainError, InvalidField, ValidationErrors
from chalicelib.kernel.names import TextKind, clean_optional
from chalicelib.kernel.personal import IdType
from chalicelib.verification.authority import AuthorityChecks
from chalicelib.verification.cases import CaseOpener
from chalicelib.verification.consents import require_biometric_consent
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.engines import EngineUnavailable
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import (
    MACHINE_READABLE_ID_TYPES,
    PERMANENT,
    CheckName,
    CheckVerdict,
    Flow,
    FlowPurpose,
    ReviewReason,
    TypedIdentity,
)
from chalicelib.verification.domain.ocr import (
    TypedDetails,
    check_letter,
    cross_check,
    parse_authorization_letter,
    parse_business_licence,
    parse_id_back,
    parse_id_front,
    parse_vehicle_document,
)
from chalicelib.verification.domain.readings import (
    AuthorizationLetter,
    BusinessLicence,
    IdBack,
    IdFront,
    VehicleDocument,
)
from chalicelib.verification.flows import Flows
from chalicelib.verification.portrait import CARD_FIELD, NO_PORTRAIT, find_portrait
from chalicelib.verification.ports import EvidenceLog, FaceEngine, OcrEngine
from chalicelib.verification.uploads import UploadService
from chalicelib.verification.views import OcrOutcome, PresignedUpload, StoredDocument

#: Documents OCR reads, and the check each one records.
OCR_CHECKS: dict[DocumentKind, CheckName] = {
    DocumentKind.ID_FRONT: CheckName.OCR_ID_FRONT,
    DocumentKind.ID_BACK: CheckName.OCR_ID_BACK,
    DocumentKind.BUSINESS_LICENCE: CheckName.OCR_BUSINESS_LICENCE,
}

#: Flows of an enterprise's fleet batch (单位登记 / 解除登记).
ENTERPRISE_PURPOSES = (FlowPurpose.ENTERPRISE_REGISTRATION, FlowPurpose.ENTERPRISE_DEREGISTRATION)

#: Photos that tie a person to a car by its VIN (proof of possession).
VEHICLE_DOCUMENTS = (DocumentKind.VEHICLE_LICENCE, DocumentKind.PURCHASE_INVOICE)

Reading = IdFront | IdBack | BusinessLicence

#: Every reading kept in the evidence (the ID card, licence, vehicle documents and the letter).
AnyReading = Reading | VehicleDocument | AuthorizationLetter


def check_replaceable(flow: Flow, kind: DocumentKind) -> None:
    """What a person may upload: never the live capture (the liveness check chooses and keeps it), and,
    once a face check has started, no other ID card photo (like the identity): the face verdict must
    stay about the portrait it was made against."""
    if kind is DocumentKind.LIVE_CAPTURE:
        raise InvalidField(
            "document.server_only",
            "现场人像由人脸检测生成，不能上传",
            "The live capture comes from the liveness check; it cannot be uploaded",
            field="kind",
        )
    if (
        kind
        in (
            DocumentKind.ID_FRONT,
            DocumentKind.AUTHORIZATION_LETTER,
            DocumentKind.OWNER_ID_FRONT,
            DocumentKind.OWNER_ID_BACK,
        )
        and flow.checks.get(CheckName.FACE) is not None
        # 单位登记: the enterprise's letter is no part of the face check; a reviewer may ask for a new one.
        and not (kind is DocumentKind.AUTHORIZATION_LETTER and flow.purpose in ENTERPRISE_PURPOSES)
    ):
        raise Conflict(
            "flow.documents_locked",
            "人脸核验已开始，证件照片和授权委托书不能再更换",
            "The ID card photo and the authorization letter cannot change once face checks have started",
            field="kind",
        )


def id_validity(back: IdBack) -> str | None:
    """The validity of an ID back as ``TypedIdentity.id_validity``: ``permanent`` (长期), the end date,
    or ``None`` when neither was read."""
    if back.permanent:
        return PERMANENT
    return back.valid_until.isoformat() if back.valid_until else None


def machine_readable(flow: Flow) -> bool:
    """Whether OCR reads the flow's identity document (an ID card is read before an identity is typed:
    the reading's own checks then say what is missing)."""
    if flow.identity is None:
        return True
    return flow.identity.id_type in MACHINE_READABLE_ID_TYPES or flow.identity.id_type == IdType.USCC


def back_side_in_front_slot() -> InvalidField:
    return InvalidField(
        "id_card.back_side",
        "这张是身份证国徽面，此处请拍摄有照片的人像面",
        "This is the back of the ID card (national emblem side); photograph the side with the portrait",
        field=CARD_FIELD,
    )


def front_side_in_back_slot() -> InvalidField:
    return InvalidField(
        "id_card.front_side",
        "这张是身份证人像面，此处请拍摄有有效期限的国徽面",
        "This is the portrait side of the ID card; photograph the back, with the validity period",
        field=DocumentKind.ID_BACK.value,
    )


def _mismatch_errors(mismatches: Sequence[InvalidField]) -> DomainError:
    return mismatches[0] if len(mismatches) == 1 else ValidationErrors(list(mismatches))


class Documents:
    def __init__(
        self,
        *,
        flows: Flows,
        uploads: UploadService,
        ocr: OcrEngine,
        faces: FaceEngine,
        evidence: EvidenceLog,
        authority: AuthorityChecks | None = None,
        cases: CaseOpener | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._authority = authority
        self._cases = cases
        self._flows = flows
        self._uploads = uploads
        self._ocr = ocr
        self._faces = faces
        self._evidence = evidence
        self._clock = clock

    # --- photos --------------------------------------------------------------------------------

    def presign_upload(
        self, flow_id: str, caller: str, kind: DocumentKind, content_type: str
    ) -> PresignedUpload:
        flow = self._flows.open_for_checks(flow_id, caller)
        check_replaceable(flow, kind)
        if kind is DocumentKind.ID_FRONT:
            require_biometric_consent(flow)  # its portrait is looked for once it is uploaded
        return self._uploads.presign(flow.flow_id, kind, content_type)

    def complete_upload(self, flow_id: str, caller: str, kind: DocumentKind, key: str) -> StoredDocument:
        """Validate and keep an uploaded photo; an ID front must show a portrait to compare with."""
        flow = self._flows.open_for_checks(flow_id, caller)
        check_replaceable(flow, kind)
        # An ID front must show a portrait to compare with: checked before the photo is stored, and
        # only after the biometric consent (looking for the portrait is face processing).
        if kind is DocumentKind.ID_FRONT:
            require_biometric_consent(flow)
        inspect = self._find_portrait if kind is DocumentKind.ID_FRONT else None
        try:
            stored = self._uploads.complete(flow.flow_id, kind, key, inspect, discard_raw=False)
        except EngineUnavailable:
            raise  # nothing was refused: the same upload is completed again once the engine answers
        except DomainError as err:
            self._evidence.append(
                flow.flow_id,
                EvidenceKind.UPLOAD_REFUSED,
                caller,
                {"document": kind.value, "code": err.code, "status": err.status},
            )
            raise
        replaced = flow.documents.get(kind.value)
        if replaced == stored.key:
            # This very photo is the one recorded (an earlier completion of it landed, its answer lost):
            # done, and its evidence not added twice.
            self._uploads.delete(key)
            return stored
        checks = dict(flow.checks)
        if kind in OCR_CHECKS:
            checks.pop(OCR_CHECKS[kind], None)  # a new photo must be read again
        accepted = {
            "document": kind.value,
            "sha256": stored.sha256,
            "size": stored.size,
            "width": stored.width,
            "height": stored.height,
        }
        try:
            # The photo on the flow and its evidence in one write: a refused write leaves neither.
            self._flows.save_noted(
                flow,
                EvidenceKind.UPLOAD_ACCEPTED,
                caller,
                accepted,
                documents={**flow.documents, kind.value: stored.key},
                checks=checks,
            )
        except Exception:
            # Not recorded: the clean copy goes, the raw upload stays to be completed again (never
            # "upload again"). Unless the write landed and only its answer was lost: the stored flow
            # then records the copy, which stays (completed again, the upload finds it recorded).
            if not self._recorded(flow.flow_id, kind, stored.key):
                with contextlib.suppress(Exception):
                    self._uploads.delete(stored.key)
            raise
        self._uploads.delete(key)
        if replaced and replaced != stored.key:
            self._uploads.delete(replaced)
        return stored

    def _recorded(self, flow_id: str, kind: DocumentKind, key: str) -> bool:
        """Whether the stored flow records ``key`` as its ``kind`` photo, or may (the flow could not be
        read back): a copy it records, or may record, is never deleted."""
        try:
            latest = self._flows.find(flow_id)
        except Exception:
            return True  # unknown: kept (a copy left behind goes with the flow's photos when purged)
        return latest is not None and latest.documents.get(kind.value) == key

    def _find_portrait(self, jpeg: bytes) -> object:
        """The portrait on an ID front; a photo of the card's back (国徽面) chosen instead is told as such
        (not "no portrait": the remedy is the other side, not a better photo)."""
        try:
            return find_portrait(self._faces, jpeg)
        except InvalidField as err:
            if err.code == NO_PORTRAIT and self._shows_id_back(jpeg):
                raise back_side_in_front_slot() from err
            raise

    def _shows_id_back(self, jpeg: bytes) -> bool:
        try:
            lines = self._ocr.read(jpeg)
        except EngineUnavailable:
            return False  # the portrait's refusal stands as it is
        back = parse_id_back(lines)
        return back.valid_until is not None or back.permanent or back.authority is not None

    def photo(self, flow: Flow, kind: DocumentKind) -> bytes:
        """The flow's stored photo of ``kind`` (``flow.document_missing`` when none was uploaded)."""
        return self._uploads.read(self._key(flow, kind))

    def has_photo(self, flow: Flow, kind: DocumentKind) -> bool:
        """Whether the photo of ``kind`` the flow records is still stored, learnt without reading nor
        decrypting it (``flow.document_missing`` when the flow records none)."""
        return self._uploads.exists(self._key(flow, kind))

    @staticmethod
    def _key(flow: Flow, kind: DocumentKind) -> str:
        """The key of the flow's photo of ``kind`` (``flow.document_missing`` when none was uploaded)."""
        key = flow.documents.get(kind.value)
        if key is None:
            raise Conflict(
                "flow.document_missing",
                "请先上传所需的证件照片",
                f"Upload the {kind.value} photo first",
                field=kind.value,
                details={"document": kind.value},
            )
        return key

    def store_live_capture(self, flow: Flow, jpeg: bytes) -> StoredDocument:
        """Keep the live capture a passed liveness check chose (the caller records it in the flow)."""
        from chalicelib.kernel.images import MAX_PIXELS, ImageRefused, open_image

        try:
            with open_image(jpeg, max_pixels=MAX_PIXELS) as image:
                width, height = image.size
        except ImageRefused as exc:  # the liveness engine's own re-encoded frame: never expected
            raise ValueError(f"the live capture cannot be read ({exc.reason})") from exc
        return self._uploads.store(flow.flow_id, DocumentKind.LIVE_CAPTURE, jpeg, width, height)

    def discard_live_capture(self, flow: Flow, key: str, jpeg: bytes) -> None:
        """Delete the live capture (``jpeg``, kept under ``key``) of a verdict that was then not saved.

        The key is the content's: a concurrent send of the same frames may be saving that very key, so
        the capture is deleted first and the stored flow read after; if it records the capture (that
        send's verdict saved, or this one's whose answer was lost) or cannot be read, the capture is
        put back. A send that saved it looks after its write that it is still there (a deletion before
        that write is then seen). Best effort: one left behind goes with the flow's photos when it is
        purged."""
        with contextlib.suppress(Exception):
            self._uploads.delete(key)
            if self._recorded(flow.flow_id, DocumentKind.LIVE_CAPTURE, key):
                self.store_live_capture(flow, jpeg)

    def document_url(self, flow: Flow, kind: str) -> str | None:
        key = flow.documents.get(kind)
        return self._uploads.presign_get(key) if key else None

    # --- OCR -----------------------------------------------------------------------------------

    def read_document(self, flow_id: str, caller: str, kind: DocumentKind) -> OcrOutcome:
        """OCR the stored photo and cross-check it with the typed identity, field by field."""
        flow = self._flows.open_for_checks(flow_id, caller)
        if kind not in OCR_CHECKS:
            raise InvalidField(
                "ocr.kind", "该类证件不支持识别", f"{kind.value} photos are not read", field="kind"
            )
        if kind in (DocumentKind.ID_FRONT, DocumentKind.ID_BACK) and not machine_readable(flow):
            return self._to_reviewer(flow, kind, caller)
        lines = self._ocr.read(self.photo(flow, kind))
        parsed: Reading
        if kind is DocumentKind.ID_FRONT:
            parsed = parse_id_front(lines)
        elif kind is DocumentKind.ID_BACK:
            parsed = parse_id_back(lines)
        else:
            parsed = parse_business_licence(lines)
        reading, fields_read = self._record_reading(flow, kind, caller, parsed, len(lines))
        self._record_cross_check(flow, kind, caller, self._reading_errors(flow, parsed))
        changes: dict[str, Any] = {"checks": {**flow.checks, OCR_CHECKS[kind]: CheckVerdict.PASSED}}
        if isinstance(parsed, IdBack) and flow.identity is not None:
            # 如实登记 (第五条): the validity read goes with the identity to the party and the push.
            changes["identity"] = flow.identity.model_copy(update={"id_validity": id_validity(parsed)})
        if isinstance(parsed, IdFront) and flow.identity is not None and not flow.identity.address:
            # 第五条: the holder's address; not typed, the one on the resident ID's front (as read) is it.
            try:
                read_address = clean_optional(TextKind.ADDRESS, parsed.address, field="address")
            except InvalidField:
                read_address = None  # not text a person could have typed: they type it themselves
            if read_address:
                changes["identity"] = flow.identity.model_copy(update={"address": read_address})
        if kind is DocumentKind.ID_FRONT and self._authority is not None:
            # 证件真实性 (raises when it is not real). The reading is saved with the authority's verdict, in
            # the one write of the flow the check makes: a store failure before it leaves the flow as it was.
            self._authority.check_holder(flow.model_copy(update=changes), caller)
        else:
            self._flows.save(flow, **changes)
        return OcrOutcome(
            kind=kind,
            fields_read=fields_read,
            confidences=dict(parsed.confidences),
            agreed=True,
            reading=reading,
        )

    def read_for_confirmation(self, flow_id: str, caller: str, kind: DocumentKind) -> OcrOutcome:
        """OCR first (识别后确认): the stored photo of the resident ID's front or back read and returned
        to fill the identity form the person then confirms or corrects. Nothing is checked against an
        identity and no check is recorded: the confirmed identity (``identity``) is cross-checked with
        the card by ``read_document`` as for a typed one. The back's validity is checked at once (an
        expired card is told before anything is typed); a side in the other side's slot is told so."""
        flow = self._flows.open_for_checks(flow_id, caller)
        if kind not in (DocumentKind.ID_FRONT, DocumentKind.ID_BACK):
            raise InvalidField(
                "ocr.kind", "该类证件不支持识别", f"{kind.value} photos are not read", field="kind"
            )
        if flow.identity is not None and flow.identity.id_type not in MACHINE_READABLE_ID_TYPES:
            raise InvalidField(
                "ocr.not_machine_readable",
                "该类证件不能自动识别，请填写证件信息",
                "This document is not read automatically; type its details",
                field="id_type",
            )
        lines = self._ocr.read(self.photo(flow, kind))
        parsed: IdFront | IdBack = (
            parse_id_front(lines) if kind is DocumentKind.ID_FRONT else parse_id_back(lines)
        )
        reading, fields_read = self._record_reading(flow, kind, caller, parsed, len(lines))
        if isinstance(parsed, IdBack):
            if parsed.valid_until is None and not parsed.permanent and parse_id_front(lines).id_number:
                raise front_side_in_back_slot()
            errors = self._reading_errors(flow, parsed)
            if errors:
                raise _mismatch_errors(errors)
        elif not (parsed.name or parsed.id_number) and parse_id_back(lines).valid_until is not None:
            raise back_side_in_front_slot()
        return OcrOutcome(
            kind=kind,
            fields_read=fields_read,
            confidences=dict(parsed.confidences),
            agreed=False,
            reading=reading,
        )

    def _to_reviewer(self, flow: Flow, kind: DocumentKind, caller: str) -> OcrOutcome:
        """A passport or permit: OCR does not read it, so a reviewer does, at once (never a dead end).

        The document's photo (its data page or front; a back where it has one) must be there; the
        identity authority is asked as for an ID card (it records ``not_covered`` for the types it does
        not hold). The case holds the flow until the reviewer has compared the photos with the typed
        identity; approved, the person does the face check against the document's portrait (the live
        capture kept with the evidence, as for every registration).
        """
        self.photo(flow, DocumentKind.ID_FRONT)  # flow.document_missing when there is none
        if self._cases is None:
            raise Conflict(
                "document.not_machine_readable",
                "该类证件暂不支持在线识别，请前往营业厅办理",
                "This document cannot be read online; register at a business hall",
                field="id_type",
            )
        if self._authority is not None:
            self._authority.check_holder(flow, caller)
            flow = self._flows.find(flow.flow_id) or flow
        checks = {
            **flow.checks,
            CheckName.OCR_ID_FRONT: CheckVerdict.IN_REVIEW,
            CheckName.OCR_ID_BACK: CheckVerdict.IN_REVIEW,
        }
        flow = self._flows.save(flow, checks=checks)
        assert flow.identity is not None
        case = self._cases.open(
            flow,
            caller,
            ReviewReason.DOCUMENT_NOT_MACHINE_READABLE,
            {"document": kind.value, "id_type": flow.identity.id_type},
        )
        return OcrOutcome(
            kind=kind, fields_read=[], confidences={}, agreed=False, reading={}, review_case_id=case.case_id
        )

    def read_vehicle_document(self, flow_id: str, caller: str, kind: DocumentKind) -> VehicleDocument:
        """行驶证 / purchase invoice: OCR the stored photo for the VIN; the reading into the evidence."""
        flow = self._flows.open_for_checks(flow_id, caller)
        if kind not in VEHICLE_DOCUMENTS:
            raise InvalidField(
                "ocr.kind", "该类证件不支持识别", f"{kind.value} photos are not read", field="kind"
            )
        lines = self._ocr.read(self.photo(flow, kind))
        parsed = parse_vehicle_document(lines)
        self._record_reading(flow, kind, caller, parsed, len(lines))
        return parsed

    def check_owner_id(self, flow_id: str, caller: str, owner: TypedIdentity) -> str | None:
        """委托登记 (第十二条): the owner's ID card photo, read and cross-checked with the owner's typed
        identity (name and number), into the evidence; ``ocr.mismatch`` when they disagree. The back
        of the owner's resident ID, when uploaded, is read too (第五条): its validity is returned as
        ``TypedIdentity.id_validity`` (``id_card.expired`` when past); ``None`` without a back."""
        flow = self._flows.open_for_checks(flow_id, caller)
        kind = DocumentKind.OWNER_ID_FRONT
        lines = self._ocr.read(self.photo(flow, kind))
        parsed = parse_id_front(lines)
        self._record_reading(flow, kind, caller, parsed, len(lines))
        typed = TypedDetails(name=owner.name, id_number=owner.id_number)
        errors = [
            InvalidField(e.code, e.message_zh, e.message_en, field=f"owner.{e.field}", details=e.details)
            for e in (m.to_error() for m in cross_check(parsed, typed))
        ]
        self._record_cross_check(flow, kind, caller, errors)
        checks = {**flow.checks, CheckName.OCR_OWNER_ID_FRONT: CheckVerdict.PASSED}
        validity = None
        if DocumentKind.OWNER_ID_BACK.value in flow.documents:
            back_kind = DocumentKind.OWNER_ID_BACK
            back_lines = self._ocr.read(self.photo(flow, back_kind))
            back = parse_id_back(back_lines)
            self._record_reading(flow, back_kind, caller, back, len(back_lines))
            expired = [
                InvalidField(e.code, e.message_zh, e.message_en, field=back_kind.value, details=e.details)
                for e in self._reading_errors(flow, back)
            ]
            self._record_cross_check(flow, back_kind, caller, expired)
            checks[CheckName.OCR_OWNER_ID_BACK] = CheckVerdict.PASSED
            validity = id_validity(back)
        saved = self._flows.save(flow, checks=checks)
        if self._authority is not None:
            self._authority.check_owner(saved, caller, owner)
        return validity

    def check_authorization_letter(
        self, flow_id: str, caller: str, *, owner_name: str, owner_id_number: str, vin: str
    ) -> AuthorizationLetter:
        """委托登记 (第十二条): the 授权委托书 read (OCR) and checked: it names the owner (and their ID
        number where it carries one), a trustee and the car's VIN; into the evidence. The reading is
        returned for the trustee's name (the person the flow verifies must be that one)."""
        flow = self._flows.open_for_checks(flow_id, caller)
        kind = DocumentKind.AUTHORIZATION_LETTER
        lines = self._ocr.read(self.photo(flow, kind))
        letter = parse_authorization_letter(lines)
        self._record_reading(flow, kind, caller, letter, len(lines))
        mismatches = check_letter(letter, owner_name=owner_name, vin=vin, owner_id_number=owner_id_number)
        self._record_cross_check(flow, kind, caller, [m.to_error() for m in mismatches])
        return letter

    def _record_reading(
        self, flow: Flow, kind: DocumentKind, caller: str, parsed: AnyReading, lines: int
    ) -> tuple[dict[str, Any], list[str]]:
        """The OCR reading into the evidence: what was read publicly, the personal fields sealed."""
        reading = parsed.model_dump(mode="json", exclude={"confidences"})
        fields_read = sorted(k for k, v in reading.items() if v not in (None, False, ""))
        personal = {
            k: str(v) for k, v in reading.items() if k in ("name", "id_number", "address", "birth_date") and v
        }
        self._evidence.append(
            flow.flow_id,
            EvidenceKind.OCR_READ,
            caller,
            {
                "document": kind.value,
                "engine": self._ocr.name,
                "engine_version": self._ocr.version,
                "fields_read": fields_read,
                "confidences": {k: round(v, 4) for k, v in parsed.confidences.items()},
                "lines": lines,
            },
            personal,
        )
        return reading, fields_read

    def _record_cross_check(
        self, flow: Flow, kind: DocumentKind, caller: str, errors: list[InvalidField]
    ) -> None:
        """The cross-check's verdict into the evidence; ``ocr.mismatch`` (or the first error) if any."""
        self._evidence.append(
            flow.flow_id,
            EvidenceKind.OCR_CROSS_CHECKED,
            caller,
            {
                "document": kind.value,
                "agreed": not errors,
                "mismatches": [{"field": e.field, "code": e.code, "details": e.details} for e in errors],
            },
        )
        if errors:
            raise _mismatch_errors(errors)

    def _reading_errors(self, flow: Flow, parsed: Reading) -> list[InvalidField]:
        if isinstance(parsed, IdBack):
            today = china_day(self._clock())
            if not parsed.permanent and parsed.valid_until is not None and parsed.valid_until < today:
                return [
                    InvalidField(
                        "id_card.expired",
                        f"这张身份证已过有效期（有效期至 {parsed.valid_until.isoformat()}），"
                        "请使用有效期内的身份证办理，已换领新证的请拍摄新证",
                        "The ID card has expired; use a card within its validity (a renewed one)",
                        field="id_back",
                        details={"valid_until": parsed.valid_until.isoformat()},
                    )
                ]
            return []
        identity = flow.identity
        if identity is None:
            raise Conflict(
                "flow.step_out_of_order",
                "请先填写证件信息",
                "Enter the identity details first",
                details={"missing": "identity"},
            )
        typed = TypedDetails(
            name=identity.name if isinstance(parsed, IdFront) else None,
            id_number=identity.id_number if isinstance(parsed, IdFront) else None,
            uscc=identity.uscc or (identity.id_number if identity.id_type == IdType.USCC else None),
            company_name=identity.company_name
            or (identity.name if identity.id_type == IdType.USCC else None),
        )
        return [m.to_error() for m in cross_check(parsed, typed)]
