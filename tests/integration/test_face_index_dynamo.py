"""Face templates in DynamoDB (embedded AWS): the descriptor sealed, changes seen by another process."""

from __future__ import annotations

import numpy as np

from chalicelib.adapters.faces.index_local import LocalFaceIndex
from chalicelib.adapters.faces.local import LocalFaceEngine
from chalicelib.adapters.faces.templates import DynamoTemplateStore, pack
from chalicelib.core import deps
from chalicelib.core.aws import client
from chalicelib.core.settings import get_settings

RNG = np.random.default_rng(5)


def descriptor() -> np.ndarray:
    vector = RNG.normal(size=128)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def store() -> DynamoTemplateStore:
    from chalicelib.adapters.dynamo.models import bind

    bind(get_settings())
    return DynamoTemplateStore(deps.field_cipher(), page_size=7)


def test_the_descriptor_is_stored_only_sealed_and_reads_back_exactly(aws: None) -> None:
    # Given a face bound through the index
    templates = store()
    faces = LocalFaceIndex(LocalFaceEngine(), templates)
    face = descriptor()
    faces.bind_descriptor("person-hash-a", "flow-a", face)
    # Then the raw item holds no descriptor in clear: neither its floats nor their encoding
    raw = client("dynamodb").get_item(
        TableName=get_settings().table_name("face-templates"), Key={"template_id": {"S": "flow-a"}}
    )["Item"]
    assert "descriptor_enc" in raw
    assert "data_key" in raw
    assert pack(face) not in str(raw)
    assert raw["person_hash"] == {"S": "person-hash-a"}
    # and it reads back bit for bit
    template = templates.get("flow-a")
    assert template is not None
    assert template.descriptor is not None
    assert np.array_equal(template.descriptor, face)


def test_a_second_process_loads_every_template_a_page_at_a_time_then_only_changes(aws: None) -> None:
    # Given 20 bound faces (pages of 7 items)
    writer = LocalFaceIndex(LocalFaceEngine(), store())
    faces = [descriptor() for _ in range(20)]
    for n, face in enumerate(faces):
        writer.bind_descriptor(f"person-{n}", f"flow-{n}", face)
    # When another process searches for the 8th face
    templates = store()
    reader = LocalFaceIndex(LocalFaceEngine(), templates)
    hits = reader.search_descriptor(faces[7], 90.0, 5)
    # Then it found it after reading the whole table in 3 pages
    assert [(h.template_id, h.person_hash) for h in hits] == [("flow-7", "person-7")]
    assert (reader.size, templates.reads) == (20, 3)
    # When the first process forgets it, the second no longer finds it: the tombstone is a change
    assert writer.forget("flow-7")
    assert reader.search_descriptor(faces[7], 90.0, 5) == []
    assert reader.size == 19
    # and the tombstone keeps no descriptor
    raw = client("dynamodb").get_item(
        TableName=get_settings().table_name("face-templates"), Key={"template_id": {"S": "flow-7"}}
    )["Item"]
    assert raw["state"] == {"S": "forgotten"}
    assert "descriptor_enc" not in raw
    assert "expires_epoch" in raw
