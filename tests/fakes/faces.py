"""An in-memory face index: a face is its photo's bytes (two photos are one face only when declared)."""

from __future__ import annotations

from typing import ClassVar

from chalicelib.verification.domain.faces import no_face
from chalicelib.verification.ports import FaceIndex, IndexedFace


class FakeFaceIndex(FaceIndex):
    """Templates in a dict; a photo scores ``score`` with a bound photo of the same face, 0 otherwise.

    ``same_face(a, b)`` declares two photos one face; ``faceless`` photos raise ``face.none``.
    """

    name: ClassVar[str] = "fake-index"

    def __init__(self, score: float = 95.0) -> None:
        self.score = score
        self.templates: dict[str, tuple[str, bytes]] = {}
        self.faceless: set[bytes] = set()
        self._faces: dict[bytes, bytes] = {}
        self.searches = 0

    def same_face(self, a: bytes, b: bytes) -> None:
        self._faces[b] = self._face(a)

    def _face(self, image: bytes) -> bytes:
        return self._faces.get(image, image)

    def search(self, image: bytes, threshold: float, limit: int) -> list[IndexedFace]:
        self.searches += 1
        if image in self.faceless:
            raise no_face()
        face = self._face(image)
        hits = [
            IndexedFace(template_id=template_id, person_hash=person_hash, score=self.score)
            for template_id, (person_hash, bound) in self.templates.items()
            if self._face(bound) == face and self.score >= threshold
        ]
        return hits[:limit]

    def bind(self, person_hash: str, template_id: str, image: bytes) -> None:
        if image in self.faceless:
            raise no_face()
        self.templates[template_id] = (person_hash, image)

    def forget(self, template_id: str) -> bool:
        return self.templates.pop(template_id, None) is not None

    def people(self) -> set[str]:
        return {person for person, _ in self.templates.values()}
