"""Face engines (人脸比对): the port and its local (dlib) and Rekognition implementations.

Importing this package loads no model and no AWS client; ``local`` loads dlib's models on first use.
"""

from chalicelib.adapters.faces.port import (
    DEFAULT_FACE_THRESHOLD,
    DetectedFace,
    EmbeddingFaceEngine,
    FaceBox,
    FaceComparison,
    FaceEmbedding,
    FaceEngine,
    check_selfie,
)

__all__ = [
    "DEFAULT_FACE_THRESHOLD",
    "DetectedFace",
    "EmbeddingFaceEngine",
    "FaceBox",
    "FaceComparison",
    "FaceEmbedding",
    "FaceEngine",
    "check_selfie",
]
