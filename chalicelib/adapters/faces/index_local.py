"""The local face index: dlib descriptors in a template store, searched exactly in memory.

Every bound descriptor (128 float32) is held in a matrix in the process; a search first reads what
changed in the store since the last look (one request when nothing did: the ``by-change`` index,
``templates.TemplateStore.changes``), applies it (new rows, tombstones removed), then computes the
Euclidean distance of the searched face to every row at once and maps it to the engine's similarity.
The first search of a process reads the whole store (about 2 requests per 1,000 templates) and
decrypts each descriptor; later ones only the changes. Cost measured by ``bench/bench_dedup.py``.

The descriptor of the last photo described is kept (by the photo's SHA-256), so binding the face a
search has just looked at does not describe it again.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from chalicelib.adapters.faces.local import ZERO_SIMILARITY_DISTANCE, LocalFaceEngine
from chalicelib.adapters.faces.templates import Template, TemplateStore, change_key, now_ms, watermark
from chalicelib.verification.ports import FaceIndex, IndexedFace

_DIMENSIONS = 128


class TemplateMatrix:
    """The bound descriptors as rows of a matrix, with their template ids and identity hashes."""

    def __init__(self) -> None:
        self._rows = np.zeros((0, _DIMENSIONS), dtype=np.float32)
        #: Each row's squared norm, so a search is one matrix-vector product.
        self._norms = np.zeros(0, dtype=np.float32)
        self._size = 0
        self._ids: list[str] = []
        self._people: list[str] = []
        self._where: dict[str, int] = {}

    def __len__(self) -> int:
        return self._size

    def apply(self, template: Template) -> None:
        """Add, replace or (a tombstone) remove one template."""
        self.remove(template.template_id)
        if template.state == "bound" and template.descriptor is not None:
            self._add(template.template_id, template.person_hash, template.descriptor)

    def _add(self, template_id: str, person_hash: str, descriptor: np.ndarray[Any, Any]) -> None:
        if self._size == len(self._rows):
            grown = np.zeros((max(1024, 2 * len(self._rows)), _DIMENSIONS), dtype=np.float32)
            grown[: self._size] = self._rows[: self._size]
            norms = np.zeros(len(grown), dtype=np.float32)
            norms[: self._size] = self._norms[: self._size]
            self._rows, self._norms = grown, norms
        self._rows[self._size] = descriptor
        self._norms[self._size] = float(np.dot(descriptor, descriptor))
        self._ids.append(template_id)
        self._people.append(person_hash)
        self._where[template_id] = self._size
        self._size += 1

    def remove(self, template_id: str) -> None:
        row = self._where.pop(template_id, None)
        if row is None:
            return
        last = self._size - 1
        if row != last:  # the last row takes the removed one's place
            self._rows[row] = self._rows[last]
            self._norms[row] = self._norms[last]
            self._ids[row], self._people[row] = self._ids[last], self._people[last]
            self._where[self._ids[row]] = row
        self._ids.pop()
        self._people.pop()
        self._size = last

    def nearest(
        self, descriptor: np.ndarray[Any, Any], max_distance: float, limit: int
    ) -> list[tuple[str, str, float]]:
        """(template id, person hash, distance) of up to ``limit`` rows within ``max_distance``, nearest
        first."""
        if self._size == 0:
            return []
        # |r − q|² = |r|² − 2 r·q + |q|²: one matrix-vector product over every row.
        squared = self._norms[: self._size] - 2.0 * (self._rows[: self._size] @ descriptor)
        distances = np.sqrt(np.maximum(0.0, squared + float(np.dot(descriptor, descriptor))))
        near = np.flatnonzero(distances <= max_distance)
        near = near[np.argsort(distances[near], kind="stable")][:limit]
        return [(self._ids[i], self._people[i], float(distances[i])) for i in near]


class LocalFaceIndex(FaceIndex):
    """Exact search over the local engine's descriptors (see the module docstring)."""

    name: ClassVar[str] = LocalFaceEngine.name

    def __init__(
        self, engine: LocalFaceEngine, store: TemplateStore, clock: Callable[[], int] = now_ms
    ) -> None:
        """``clock``: epoch milliseconds (the store's change keys are)."""
        self._engine = engine
        self._store = store
        self._clock = clock
        self._matrix = TemplateMatrix()
        self._seen = ""
        self._applied: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()
        self._described: tuple[str, np.ndarray[Any, Any]] | None = None

    @property
    def size(self) -> int:
        """Templates held in memory (after the last refresh)."""
        return len(self._matrix)

    def refresh(self) -> int:
        """Apply what changed in the store since the last look; how many changes were new."""
        with self._lock:
            start = watermark(self._seen, self._clock()) if self._seen else change_key(0, "")
            changes = self._store.changes(start)
            applied = 0
            for template in changes:
                if self._applied.get(template.template_id) == (template.changed, template.state):
                    continue  # read again in the overlap: already applied
                self._matrix.apply(template)
                self._applied[template.template_id] = (template.changed, template.state)
                self._seen = max(self._seen, template.changed)
                applied += 1
            return applied

    def _describe(self, image: bytes) -> np.ndarray[Any, Any]:
        digest = hashlib.sha256(image).hexdigest()
        described = self._described
        if described is not None and described[0] == digest:
            return described[1]
        vector = np.asarray(self._engine.embed(image).vector, dtype=np.float32)
        self._described = (digest, vector)
        return vector

    def search_descriptor(
        self, descriptor: np.ndarray[Any, Any], threshold: float, limit: int
    ) -> list[IndexedFace]:
        """``search`` for a descriptor already computed."""
        self.refresh()
        max_distance = (1.0 - threshold / 100.0) * ZERO_SIMILARITY_DISTANCE
        with self._lock:
            near = self._matrix.nearest(np.asarray(descriptor, dtype=np.float32), max_distance, limit)
        return [
            IndexedFace(
                template_id=template_id,
                person_hash=person_hash,
                score=round(100.0 * max(0.0, 1.0 - distance / ZERO_SIMILARITY_DISTANCE), 2),
            )
            for template_id, person_hash, distance in near
        ]

    def search(self, image: bytes, threshold: float, limit: int) -> list[IndexedFace]:
        return self.search_descriptor(self._describe(image), threshold, limit)

    def bind_descriptor(self, person_hash: str, template_id: str, descriptor: np.ndarray[Any, Any]) -> None:
        """``bind`` for a descriptor already computed."""
        stored = self._store.put(
            Template(
                template_id=template_id,
                person_hash=person_hash,
                engine=self.name,
                descriptor=np.asarray(descriptor, dtype=np.float32),
            )
        )
        with self._lock:
            self._matrix.apply(stored)
            self._applied[template_id] = (stored.changed, stored.state)

    def bind(self, person_hash: str, template_id: str, image: bytes) -> None:
        self.bind_descriptor(person_hash, template_id, self._describe(image))

    def forget(self, template_id: str) -> bool:
        forgotten = self._store.forget(template_id)
        with self._lock:
            self._matrix.remove(template_id)
            self._applied.pop(template_id, None)
        return forgotten
