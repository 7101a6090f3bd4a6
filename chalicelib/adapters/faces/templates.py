"""Where face templates are kept: one item per template, read back by what changed since a watermark.

``TemplateStore`` is what the face indexes (``index_local``, ``index_rekognition``) need from a store:
put a template, forget it (a tombstone others can see), get one, and the templates changed since a
watermark, in order. ``DynamoTemplateStore`` is the table ``face-templates`` (``models_faces``), with
the descriptor sealed by the ``FieldCipher``; ``MemoryTemplateStore`` keeps them in a dict (one process:
benchmarks and tests). Both count the store reads they make (``reads``: requests, one per page).
"""

from __future__ import annotations

import base64
import bisect
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from chalicelib.kernel.crypto import FieldCipher, SealedFields

TemplateState = Literal["bound", "forgotten"]

#: A tombstone is kept this long, so every process refreshing its cache sees the template go.
TOMBSTONE_SECONDS = 7 * 86_400

#: Changes of the last this many milliseconds are read again: writers' clocks and the index's eventual
#: consistency can put a change slightly behind one already read.
OVERLAP_MS = 60_000


@dataclass(frozen=True)
class Template:
    template_id: str
    person_hash: str
    engine: str
    state: TemplateState = "bound"
    #: The local engine's descriptor (float32), None for a tombstone or a provider's template.
    descriptor: np.ndarray | None = None
    #: The provider's face ids (Rekognition), empty otherwise.
    face_ids: tuple[str, ...] = ()
    #: ``<epoch ms, 13 digits>#<template id>``: the order of changes.
    changed: str = ""


def change_key(epoch_ms: int, template_id: str) -> str:
    return f"{epoch_ms:013d}#{template_id}"


def watermark(changed: str, now_ms: int, overlap_ms: int = OVERLAP_MS) -> str:
    """The key to read changes after, having seen up to ``changed``: ``changed`` itself when it is older
    than ``overlap_ms``, else the start of that window (a change written meanwhile may sort before it)."""
    epoch_ms = int(changed.split("#", 1)[0])
    if epoch_ms < now_ms - overlap_ms:
        return changed
    return change_key(max(0, now_ms - overlap_ms), "")


def pack(descriptor: np.ndarray) -> str:
    return base64.b64encode(np.asarray(descriptor, dtype="<f4").tobytes()).decode()


def unpack(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float32)


class TemplateStore(ABC):
    #: Store reads (requests) made so far.
    reads: int

    @abstractmethod
    def put(self, template: Template) -> Template:
        """Keep ``template`` (replacing one under its id); returns it with its change key."""

    @abstractmethod
    def get(self, template_id: str) -> Template | None:
        """The template, or None (also for a tombstone)."""

    @abstractmethod
    def forget(self, template_id: str) -> bool:
        """Leave a tombstone in place of the template; False when there was none."""

    @abstractmethod
    def changes(self, after: str) -> list[Template]:
        """Templates (and tombstones) whose change key is above ``after``, in change order."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class MemoryTemplateStore(TemplateStore):
    """Templates in a dict, for one process (benchmarks and tests); ``clock`` gives epoch milliseconds."""

    def __init__(self, clock: Callable[[], int] = now_ms) -> None:
        self.reads = 0
        self._clock = clock
        self._items: dict[str, Template] = {}
        #: Change keys in order (the change index): a key whose template changed again is left behind.
        self._changes: list[str] = []
        self._lock = threading.Lock()

    def _keep(self, template: Template) -> None:
        self._items[template.template_id] = template
        bisect.insort(self._changes, template.changed)

    def put(self, template: Template) -> Template:
        stored = replace(template, changed=change_key(self._clock(), template.template_id))
        with self._lock:
            self._keep(stored)
        return stored

    def get(self, template_id: str) -> Template | None:
        self.reads += 1
        found = self._items.get(template_id)
        return found if found is not None and found.state == "bound" else None

    def forget(self, template_id: str) -> bool:
        with self._lock:
            found = self._items.get(template_id)
            if found is None or found.state != "bound":
                return False
            self._keep(
                replace(
                    found,
                    state="forgotten",
                    descriptor=None,
                    face_ids=(),
                    changed=change_key(self._clock(), template_id),
                )
            )
        return True

    def changes(self, after: str) -> list[Template]:
        self.reads += 1
        with self._lock:
            keys = self._changes[bisect.bisect_right(self._changes, after) :]
            current = (self._items[key.split("#", 1)[1]] for key in keys)
            return [template for template, key in zip(current, keys, strict=True) if template.changed == key]


class DynamoTemplateStore(TemplateStore):
    """The ``face-templates`` table; descriptors sealed with the personal-data key; ``clock`` gives epoch
    milliseconds."""

    def __init__(
        self, cipher: FieldCipher, *, page_size: int = 500, clock: Callable[[], int] = now_ms
    ) -> None:
        self.reads = 0
        self._clock = clock
        self._cipher = cipher
        self._page_size = page_size

    @staticmethod
    def _context(template_id: str) -> str:
        return f"face-templates|{template_id}"

    def put(self, template: Template) -> Template:
        from chalicelib.adapters.dynamo.models_faces import CHANGE_PARTITION, FaceTemplateModel

        changed = change_key(self._clock(), template.template_id)
        item = FaceTemplateModel(
            template.template_id,
            partition=CHANGE_PARTITION,
            changed=changed,
            state="bound",
            person_hash=template.person_hash,
            engine=template.engine,
            face_ids=list(template.face_ids) or None,
        )
        if template.descriptor is not None:
            sealed = self._cipher.seal(
                self._context(template.template_id), {"descriptor": pack(template.descriptor)}
            )
            item.data_key = sealed.data_key
            item.descriptor_enc = dict(sealed.values)
        item.save()
        return replace(template, changed=changed)

    def _template(self, item: object) -> Template:
        from chalicelib.adapters.dynamo.models_faces import FaceTemplateModel

        assert isinstance(item, FaceTemplateModel)
        descriptor = None
        if item.state == "bound" and item.data_key is not None and item.descriptor_enc is not None:
            blobs = item.descriptor_enc
            values = blobs.attribute_values if hasattr(blobs, "attribute_values") else dict(blobs)
            sealed = SealedFields(bytes(item.data_key), {k: bytes(v) for k, v in values.items()})
            descriptor = unpack(self._cipher.open(self._context(item.template_id), sealed)["descriptor"])
        return Template(
            template_id=item.template_id,
            person_hash=item.person_hash,
            engine=item.engine,
            state="bound" if item.state == "bound" else "forgotten",
            descriptor=descriptor,
            face_ids=tuple(item.face_ids or ()),
            changed=item.changed,
        )

    def get(self, template_id: str) -> Template | None:
        from pynamodb.exceptions import DoesNotExist

        from chalicelib.adapters.dynamo.models_faces import FaceTemplateModel

        self.reads += 1
        try:
            item = FaceTemplateModel.get(template_id, consistent_read=True)
        except DoesNotExist:
            return None
        return self._template(item) if item.state == "bound" else None

    def forget(self, template_id: str) -> bool:
        from pynamodb.exceptions import UpdateError

        from chalicelib.adapters.dynamo.models_faces import FaceTemplateModel

        now = self._clock()
        item = FaceTemplateModel(template_id)
        try:
            item.update(
                actions=[
                    FaceTemplateModel.state.set("forgotten"),
                    FaceTemplateModel.changed.set(change_key(now, template_id)),
                    FaceTemplateModel.data_key.remove(),
                    FaceTemplateModel.descriptor_enc.remove(),
                    FaceTemplateModel.expires_epoch.set(now // 1000 + TOMBSTONE_SECONDS),
                ],
                condition=FaceTemplateModel.state == "bound",
            )
        except UpdateError as err:
            if err.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def changes(self, after: str) -> list[Template]:
        from chalicelib.adapters.dynamo.models_faces import CHANGE_PARTITION, FaceTemplateModel

        found: list[Template] = []
        start: dict[str, Any] | None = None
        while True:
            # One request per call: a page of ``page_size`` items (about 1 KB each) stays under the
            # 1 MB a DynamoDB page holds.
            page = FaceTemplateModel.by_change.query(
                CHANGE_PARTITION,
                FaceTemplateModel.changed > after,
                limit=self._page_size,
                page_size=self._page_size,
                last_evaluated_key=start,
            )
            self.reads += 1
            found.extend(self._template(item) for item in page)
            start = page.last_evaluated_key
            if not start:
                return found
