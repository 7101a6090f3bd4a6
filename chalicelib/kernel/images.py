"""Opening an untrusted image: the one way every photo, frame and preview is decoded.

``open_image`` reads the header, refuses an image with more pixels than the caller allows before a
single pixel is decoded (a 164 KB PNG can claim 20,000 × 20,000 pixels: 1.2 GB once decoded), and
turns everything Pillow raises on hostile bytes (``OSError`` for truncated data, ``SyntaxError`` and
``KeyError`` for malformed headers such as a JPEG claiming a multi-picture (MPO) index it does not
have, ``ValueError``, ``EOFError``, its decompression-bomb error) into one ``ImageRefused`` whose
``reason`` the caller maps to its own error (``document.corrupt``, ``liveness.frame_unreadable``…).
Pillow's own bomb ceiling (``MAX_IMAGE_PIXELS``) is set here as a second line behind the header check.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

#: The most pixels any photo, frame or preview may have (the uploads' cap; a 12 MP phone photo is well
#: within it): 120 MB once decoded as RGB.
MAX_PIXELS = 40_000_000

#: Pillow's own ceiling: it warns above this many pixels and refuses above twice as many. Every cap a
#: caller passes is below it, so the header check always speaks first.
PIL_MAX_PIXELS = 64_000_000

#: What Pillow raises on bytes that are not a readable image of a format it opened (its bomb error
#: and warning are added when Pillow is loaded).
_UNREADABLE: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    KeyError,
    IndexError,
    ValueError,
    EOFError,
    TypeError,
    ZeroDivisionError,
    OverflowError,
)


class ImageRefused(Exception):
    """An image that will not be decoded: ``reason`` is ``unreadable`` or ``too_many_pixels``."""

    def __init__(
        self,
        reason: Literal["unreadable", "too_many_pixels"],
        width: int | None = None,
        height: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.width = width
        self.height = height


def _pillow_errors() -> tuple[type[BaseException], ...]:
    from PIL import Image

    if Image.MAX_IMAGE_PIXELS is None or Image.MAX_IMAGE_PIXELS > PIL_MAX_PIXELS:
        Image.MAX_IMAGE_PIXELS = PIL_MAX_PIXELS
    return (Image.DecompressionBombError, Image.DecompressionBombWarning, *_UNREADABLE)


@contextlib.contextmanager
def open_image(data: bytes, *, max_pixels: int, formats: tuple[str, ...] | None = None) -> Iterator[PILImage]:
    """The image of ``data``, opened (header read, pixels not yet decoded) and checked to hold at most
    ``max_pixels``; whatever the body of the ``with`` does to it (``load``, ``convert``, ``draft``…)
    that fails on the bytes raises ``ImageRefused`` too. Raises ``ImageRefused`` otherwise."""
    from PIL import Image

    errors = _pillow_errors()
    # Pillow opens multi-picture JPEGs ("MPO") through its JPEG opener and knows no opener named "MPO":
    # asking for one raises ``KeyError: 'MPO'`` once the JPEG opener has failed on the bytes.
    if formats is not None:
        formats = tuple(sorted({"JPEG" if name == "MPO" else name for name in formats}))
    with warnings.catch_warnings():
        # Pillow warns above its ceiling and raises above twice that: both are refusals here.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            opened = Image.open(io.BytesIO(data), formats=list(formats) if formats else None)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageRefused("too_many_pixels") from exc
        except errors as exc:
            raise ImageRefused("unreadable") from exc
        with opened:
            try:
                width, height = opened.size
            except errors as exc:
                raise ImageRefused("unreadable") from exc
            if width <= 0 or height <= 0:
                raise ImageRefused("unreadable", width, height)
            # Before decoding: the header alone decides, so a bomb never allocates its pixels.
            if width * height > max_pixels:
                raise ImageRefused("too_many_pixels", width, height)
            try:
                yield opened
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise ImageRefused("too_many_pixels", width, height) from exc
            except errors as exc:
                raise ImageRefused("unreadable", width, height) from exc
