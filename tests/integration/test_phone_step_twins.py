"""The phone step sent twice at once with one code (a double tap, a client's retry racing its first
request): the first to write uses the code; the other, refused on the code, reads the registration again,
finds this very phone proved and is answered as done — with the same flow, one evidence entry. (A code
used by another registration meanwhile stays refused: ``test_step_writes.py``.)"""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.core import deps
from chalicelib.verification.domain.evidence import EvidenceKind
from tests.integration.test_step_writes import OWNER, PHONE, at_phone_step, entries, sent_code

pytest_plugins = ["tests.integration.test_step_writes"]


def test_a_twin_phone_step_overtaken_by_its_twin_is_answered_as_done_with_the_same_flow(
    vins: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    service = deps.registration_service()
    reg_id = at_phone_step(vins[0])
    code = sent_code()
    codes = deps.sms_code_service()
    match = codes.match
    twin: list[Any] = []

    def overtaken_by_its_twin(*args: Any, **kwargs: Any) -> Any:
        matched = match(*args, **kwargs)
        if not twin:  # the twin, sent at the same moment, writes first
            twin.append(None)
            twin[0] = service.verify_phone(reg_id, OWNER, PHONE, code)
        return matched

    monkeypatch.setattr(codes, "match", overtaken_by_its_twin)
    view = service.verify_phone(reg_id, OWNER, PHONE, code)
    assert len(twin) == 1
    assert view.flow_id is not None
    assert view.flow_id == twin[0].flow_id
    assert entries(view.flow_id, EvidenceKind.SMS_CHECKED) == 1
    assert deps.evidence_log().verify(view.flow_id).ok
