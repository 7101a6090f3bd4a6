"""Local OCR engine: RapidOCR (PaddleOCR PP-OCRv4 detection + recognition on onnxruntime).

The models ship inside the ``rapidocr-onnxruntime`` wheel: nothing is downloaded at run time. They are
loaded once, on the first ``read`` (not at import: a cold start that does not OCR pays nothing).
Photos are downscaled to at most ``max_side`` pixels on their long side first: a 12-megapixel phone
photo of a card holds far more pixels than the text needs, and detection time grows with area.
Boxes are mapped back to the pixels of the photo as given (after its EXIF orientation).
"""

from __future__ import annotations

import threading
from importlib import metadata
from typing import TYPE_CHECKING, Any, ClassVar

from chalicelib.verification.domain.documents import corrupt
from chalicelib.verification.domain.readings import Box, TextLine
from chalicelib.verification.ports import OcrEngine

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

#: Long side (pixels) photos are reduced to before detection. 1280 rather than 1600: with a card filling
#: the frame at 1600 px, detection dropped the single-character 性别 value (synthetic cards, rapidocr 1.4.4);
#: a card filling 40–60 % of a 12 MP photo read fully at 1000, 1280 and 1600.
DEFAULT_MAX_SIDE = 1280


class RapidOcrEngine(OcrEngine):
    name: ClassVar[str] = "rapidocr"

    def __init__(self, max_side: int = DEFAULT_MAX_SIDE) -> None:
        self.max_side = max_side
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        try:
            return f"rapidocr-onnxruntime {metadata.version('rapidocr-onnxruntime')} (PP-OCRv4)"
        except metadata.PackageNotFoundError:  # pragma: no cover - only without the wheel
            return "rapidocr-onnxruntime (PP-OCRv4)"

    def _engine(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from rapidocr_onnxruntime import RapidOCR

                    self._model = RapidOCR()
        return self._model

    def _decode(self, image: bytes) -> tuple[PILImage, float]:
        from PIL import Image, ImageOps

        from chalicelib.kernel.images import MAX_PIXELS, ImageRefused, open_image

        try:
            with open_image(image, max_pixels=MAX_PIXELS) as opened:
                picture = ImageOps.exif_transpose(opened).convert("RGB")
        except ImageRefused as err:
            raise corrupt() from err
        scale = 1.0
        long_side = max(picture.size)
        if long_side > self.max_side:
            scale = self.max_side / long_side
            size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
            picture = picture.resize(size, Image.Resampling.LANCZOS)
        return picture, scale

    def read(self, image: bytes) -> list[TextLine]:
        picture, scale = self._decode(image)
        result, _elapsed = self._engine()(picture)
        lines: list[TextLine] = []
        for points, text, score in result or []:
            corners = tuple((float(x) / scale, float(y) / scale) for x, y in points)
            box: Box | None = corners if len(corners) == 4 else None
            confidence = min(1.0, max(0.0, float(score)))
            lines.append(TextLine(text=str(text), confidence=confidence, box=box))
        return lines
