"""Liveness engines (活体检测): the port and its local (head-turn burst) and Rekognition implementations.

Importing this package loads no model and no AWS client.
"""

from chalicelib.adapters.liveness.port import (
    LivenessChallenge,
    LivenessDirection,
    LivenessEngine,
    LivenessReason,
    LivenessVerdict,
    ProviderSession,
)

__all__ = [
    "LivenessChallenge",
    "LivenessDirection",
    "LivenessEngine",
    "LivenessReason",
    "LivenessVerdict",
    "ProviderSession",
]
