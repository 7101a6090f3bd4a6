"""The consent texts through the API: the current versions, filled for the stage, each with the SHA-256
of exactly the text served."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def test_the_served_consents_are_the_current_texts_filled_for_the_stage_with_their_hash(api: Any) -> None:
    from chalicelib.core.settings import get_settings

    settings = get_settings()
    response = api.http.get("/v1/consents")
    assert response.status_code == 200
    documents = {d["kind"]: d for d in json.loads(response.body)["documents"]}
    assert {kind: d["version"] for kind, d in documents.items()} == {
        "registration_agreement": "v2",
        "responsibility_notice": "v2",
        "biometric_consent": "v3",
    }
    for doc in documents.values():
        assert doc["sha256"] == hashlib.sha256(doc["text"].encode("utf-8")).hexdigest()
        assert "{{" not in doc["text"]
        assert settings.oem_name in doc["text"]
        assert settings.oem_contact in doc["text"]
    assert "工业和信息化部车联网卡监管平台" in documents["registration_agreement"]["text"]
    assert "法律责任" in documents["responsibility_notice"]["text"]
    assert "dlib" in documents["biometric_consent"]["text"]  # the local stage's face engine
    # asked again, the same texts and hashes
    again = {d["kind"]: d["sha256"] for d in json.loads(api.http.get("/v1/consents").body)["documents"]}
    assert again == {kind: d["sha256"] for kind, d in documents.items()}
