"""The local face index's exact search over descriptors kept in a template store (no dlib: descriptors
are given directly)."""

from __future__ import annotations

import numpy as np

from chalicelib.adapters.faces.index_local import LocalFaceIndex, TemplateMatrix
from chalicelib.adapters.faces.local import LocalFaceEngine
from chalicelib.adapters.faces.templates import MemoryTemplateStore, Template

RNG = np.random.default_rng(11)


def unit(vector: np.ndarray) -> np.ndarray:
    unit_vector: np.ndarray = (vector / np.linalg.norm(vector)).astype(np.float32)
    return unit_vector


def face() -> np.ndarray:
    return unit(RNG.normal(size=128))


def near(descriptor: np.ndarray, distance: float) -> np.ndarray:
    """A descriptor exactly ``distance`` away from ``descriptor``."""
    step = RNG.normal(size=128)
    step -= step @ descriptor * descriptor
    return (descriptor + distance * unit(step)).astype(np.float32)


def index(store: MemoryTemplateStore | None = None) -> LocalFaceIndex:
    return LocalFaceIndex(LocalFaceEngine(), store or MemoryTemplateStore())


def test_search_finds_bound_faces_within_the_threshold_nearest_first_with_their_identity() -> None:
    # Given three bound faces: one at distance 0.3 (similarity 75), one at 0.55 (54.2), one far away
    faces = index()
    probe = face()
    faces.bind_descriptor("person-a", "flow-a", near(probe, 0.55))
    faces.bind_descriptor("person-b", "flow-b", near(probe, 0.30))
    faces.bind_descriptor("person-c", "flow-c", face())
    # When searching at similarity 50 (distance 0.6)
    hits = faces.search_descriptor(probe, 50.0, 10)
    # Then the two within reach come back, nearest first, on the engine's similarity scale
    assert [(h.template_id, h.person_hash) for h in hits] == [("flow-b", "person-b"), ("flow-a", "person-a")]
    assert [h.score for h in hits] == [75.0, 54.17]
    # and at 60 (distance 0.48) only the nearest; with limit 1 only one
    assert [h.template_id for h in faces.search_descriptor(probe, 60.0, 10)] == ["flow-b"]
    assert len(faces.search_descriptor(probe, 50.0, 1)) == 1


def test_another_process_sees_binds_and_forgets_through_the_store() -> None:
    # Given two processes sharing one store, the second having searched once (its cache is warm)
    store = MemoryTemplateStore()
    writer, reader = index(store), index(store)
    probe = face()
    assert reader.search_descriptor(probe, 50.0, 10) == []
    # When the first binds a face, the second finds it on its next search
    writer.bind_descriptor("person-a", "flow-a", near(probe, 0.1))
    assert [h.template_id for h in reader.search_descriptor(probe, 50.0, 10)] == ["flow-a"]
    # When the first forgets it, the second no longer does
    assert writer.forget("flow-a")
    assert reader.search_descriptor(probe, 50.0, 10) == []
    assert reader.size == 0
    # and forgetting twice is a no-op
    assert not writer.forget("flow-a")


def test_a_warm_search_reads_the_store_once_and_only_the_changes() -> None:
    # Given 500 bound faces, loaded by a first search
    store = MemoryTemplateStore()
    faces = index(store)
    for n in range(500):
        store.put(Template(template_id=f"f{n}", person_hash=f"p{n}", engine="dlib", descriptor=face()))
    faces.search_descriptor(face(), 50.0, 10)
    assert faces.size == 500
    reads = store.reads
    # When searching again
    faces.search_descriptor(face(), 50.0, 10)
    # Then one more store read, which brings only what changed lately
    assert store.reads == reads + 1


def test_rebinding_a_template_replaces_its_face() -> None:
    faces = index()
    first, second = face(), face()
    faces.bind_descriptor("person-a", "flow-a", first)
    faces.bind_descriptor("person-a", "flow-a", second)
    assert faces.size == 1
    assert faces.search_descriptor(first, 50.0, 10) == []
    assert [h.template_id for h in faces.search_descriptor(second, 50.0, 10)] == ["flow-a"]


def test_removing_rows_keeps_every_other_row_findable() -> None:
    # Given 50 faces in the matrix
    matrix = TemplateMatrix()
    descriptors = {f"f{n}": face() for n in range(50)}
    for template_id, descriptor in descriptors.items():
        matrix.apply(Template(template_id=template_id, person_hash="p", engine="dlib", descriptor=descriptor))
    # When every third is removed (the last row moves into each hole)
    for n in range(0, 50, 3):
        matrix.remove(f"f{n}")
    # Then each remaining face is found as itself, and each removed one is not
    for template_id, descriptor in descriptors.items():
        found = [hit[0] for hit in matrix.nearest(descriptor, 0.01, 1)]
        assert found == ([] if int(template_id[1:]) % 3 == 0 else [template_id])
    assert len(matrix) == 50 - len(range(0, 50, 3))
