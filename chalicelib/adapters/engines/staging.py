"""Images too large for a synchronous invoke travel through the documents bucket, under ``engine-io/``.

A synchronous Lambda invoke takes at most 6 MB of request (and 6 MB of reply). Base64 adds a third: one
liveness burst may hold 8 frames of up to 1 MB (``liveness.MAX_FRAME_BYTES``), 10.7 MB encoded, and a
stored document may be up to 20 MB (``uploads.MAX_STORED_BYTES``). So the caller keeps images inline
while the encoded images of a request fit ``INLINE_BUDGET`` and stages the largest ones otherwise: each
is written (SSE-KMS with the personal-data key, like every document) under ``ENGINE_IO_PREFIX``, the
engines function reads it, and the caller deletes it once the call returns, answered or not. Anything a
crash leaves behind is expired by the bucket's lifecycle rule on that prefix within a day.

Replies stay small: text lines, face boxes, scores, and at most one reference image (a JPEG of at most
800 px, about 100–200 KB).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol

from chalicelib.adapters.engines.codec import ImageRef, encoded_size, inline, staged

#: Objects of engine calls in flight; the bucket's lifecycle expires leftovers under this prefix.
ENGINE_IO_PREFIX = "engine-io/"
#: Synchronous invoke request limit (bytes).
INVOKE_LIMIT = 6 * 1024 * 1024
#: Encoded image characters a request keeps inline; the rest of a request is under a few KB.
INLINE_BUDGET = 5 * 1024 * 1024
#: Largest staged object the engines function reads (the largest stored document).
MAX_STAGED_BYTES = 20 * 1024 * 1024


class PayloadStager(Protocol):
    """Where staged images go: the documents bucket (``DocumentStore``: put, get, delete)."""

    def put(self, key: str, body: bytes, content_type: str) -> None: ...

    def get(self, key: str, max_bytes: int) -> bytes: ...

    def delete(self, key: str) -> None: ...


def pack(
    images: Sequence[bytes], stager: PayloadStager | None, budget: int = INLINE_BUDGET
) -> tuple[list[ImageRef], list[str]]:
    """References to ``images`` (in order) and the keys staged for them: the largest are staged until the
    inline ones fit ``budget``. Without a stager everything stays inline."""
    refs = [inline(image) for image in images]
    keys: list[str] = []
    if stager is None:
        return refs, keys
    total = sum(encoded_size(ref) for ref in refs)
    call = uuid.uuid4().hex
    for index in sorted(range(len(images)), key=lambda i: len(images[i]), reverse=True):
        if total <= budget:
            break
        key = f"{ENGINE_IO_PREFIX}{call}/{index}"
        stager.put(key, images[index], "application/octet-stream")
        keys.append(key)
        total -= encoded_size(refs[index])
        refs[index] = staged(key)
        total += encoded_size(refs[index])
    return refs, keys
