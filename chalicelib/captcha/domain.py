"""Captcha challenges, pure: the answer's alphabet, its keyed digest, and the distorted picture.

A challenge is five characters drawn as strokes (never as text: an SVG ``<text>`` would hand the answer
to any script) that are each turned, slanted, scaled and jittered, over noise curves and dots. It is
valid ``captcha_ttl_seconds`` (5 minutes) and may be answered once: a wrong answer spends it too.
The answer is kept only as a keyed hash of the challenge's id and the answer; answers compare
case-insensitively and ignore spaces.
"""

from __future__ import annotations

import base64
import hmac
import math
import random
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

#: Characters a challenge uses: none that look alike (0/O, 1/I/L, 5/S, 2/Z, 8/B).
ALPHABET = "34679ACEFHKPRTUXY"
LENGTH = 5
WIDTH, HEIGHT = 160, 60

_Stroke = tuple[tuple[float, float], ...]
#: Each character as polylines on a 4 × 6 grid (x right, y down).
_GLYPHS: dict[str, tuple[_Stroke, ...]] = {
    "3": (((0, 0), (4, 0), (2, 2.5), (4, 3.5), (4, 5), (3, 6), (0, 6)),),
    "4": (((3, 6), (3, 0), (0, 4), (4, 4)),),
    "6": (((4, 0), (1, 0), (0, 1), (0, 5), (1, 6), (3, 6), (4, 5), (4, 3.5), (3, 2.5), (0, 2.5)),),
    "7": (((0, 0), (4, 0), (1.5, 6)),),
    "9": (((4, 3.5), (1, 3.5), (0, 2.5), (0, 1), (1, 0), (3, 0), (4, 1), (4, 5), (3, 6), (0, 6)),),
    "A": (((0, 6), (2, 0), (4, 6)), ((1, 3.5), (3, 3.5))),
    "C": (((4, 0), (1, 0), (0, 1), (0, 5), (1, 6), (4, 6)),),
    "E": (((4, 0), (0, 0), (0, 6), (4, 6)), ((0, 3), (3, 3))),
    "F": (((4, 0), (0, 0), (0, 6)), ((0, 3), (3, 3))),
    "H": (((0, 0), (0, 6)), ((4, 0), (4, 6)), ((0, 3), (4, 3))),
    "K": (((0, 0), (0, 6)), ((4, 0), (0, 3.5)), ((1.3, 2.6), (4, 6))),
    "P": (((0, 6), (0, 0), (3, 0), (4, 1), (4, 2), (3, 3), (0, 3)),),
    "R": (((0, 6), (0, 0), (3, 0), (4, 1), (4, 2), (3, 3), (0, 3)), ((2, 3), (4, 6))),
    "T": (((0, 0), (4, 0)), ((2, 0), (2, 6))),
    "U": (((0, 0), (0, 5), (1, 6), (3, 6), (4, 5), (4, 0)),),
    "X": (((0, 0), (4, 6)), ((4, 0), (0, 6))),
    "Y": (((0, 0), (2, 3), (4, 0)), ((2, 3), (2, 6))),
}


class Challenge(BaseModel):
    """What a client is shown: the challenge's id, its picture (a data URL) and when it expires."""

    model_config = ConfigDict(frozen=True)

    challenge_id: str = Field(description="Give it back with the answer (captcha_id)")
    image: str = Field(description="The picture, an SVG data URL (data:image/svg+xml;base64,…)")
    expires_in: int = Field(description="Seconds the challenge may be answered (once)")


class StoredChallenge(BaseModel):
    """A challenge as stored: its answer only as a keyed hash."""

    model_config = ConfigDict(frozen=True)

    challenge_id: str
    answer_hash: str
    expires_at: AwareDatetime


def new_answer(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(LENGTH))


def normalise(answer: str) -> str:
    """What a typed answer is compared as: upper case, no spaces."""
    return "".join(answer.split()).upper()


def answer_digest_input(challenge_id: str, answer: str) -> str:
    """What the keyed hash of an answer is computed over."""
    return f"captcha:{challenge_id}:{normalise(answer)}"


def is_valid(stored: StoredChallenge | None, given_hash: str, now: datetime) -> bool:
    """Whether an answer (its keyed hash) answers ``stored``, still unexpired."""
    if stored is None or stored.expires_at <= now:
        return False
    return hmac.compare_digest(stored.answer_hash.encode(), given_hash.encode())


def _path(points: list[tuple[float, float]]) -> str:
    return "M" + " L".join(f"{x:.1f} {y:.1f}" for x, y in points)


def render_svg(answer: str, rng: random.Random) -> str:
    """The distorted picture of ``answer`` as an SVG document (strokes only, no text)."""
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}"><rect width="100%" height="100%" fill="#f4f1ea"/>'
    ]
    for _ in range(6):  # noise curves across the picture
        y0, y1 = rng.uniform(5, HEIGHT - 5), rng.uniform(5, HEIGHT - 5)
        c1 = (rng.uniform(20, 70), rng.uniform(0, HEIGHT))
        c2 = (rng.uniform(90, 140), rng.uniform(0, HEIGHT))
        shade = rng.randint(90, 170)
        parts.append(
            f'<path d="M0 {y0:.1f} C{c1[0]:.1f} {c1[1]:.1f} {c2[0]:.1f} {c2[1]:.1f} {WIDTH} {y1:.1f}" '
            f'fill="none" stroke="rgb({shade},{shade},{shade + 20})" '
            f'stroke-width="{rng.uniform(1, 2.2):.1f}"/>'
        )
    step = (WIDTH - 20) / len(answer)
    for i, char in enumerate(answer):
        scale = rng.uniform(5.2, 6.6)
        angle = math.radians(rng.uniform(-25, 25))
        slant = rng.uniform(-0.3, 0.3)
        cx = 10 + step * i + step / 2 + rng.uniform(-3, 3)
        cy = HEIGHT / 2 + rng.uniform(-5, 5)
        cos, sin = math.cos(angle), math.sin(angle)
        colour = f"rgb({rng.randint(20, 90)},{rng.randint(20, 70)},{rng.randint(60, 130)})"
        for stroke in _GLYPHS[char]:
            points = []
            for gx, gy in stroke:
                x = (gx - 2 + rng.uniform(-0.25, 0.25) + slant * (gy - 3)) * scale * 0.8
                y = (gy - 3 + rng.uniform(-0.25, 0.25)) * scale
                points.append((cx + x * cos - y * sin, cy + x * sin + y * cos))
            parts.append(
                f'<path d="{_path(points)}" fill="none" stroke="{colour}" '
                f'stroke-width="{rng.uniform(2.4, 3.4):.1f}" stroke-linecap="round" stroke-linejoin="round"/>'
            )
    for _ in range(40):  # dots over the strokes
        parts.append(
            f'<circle cx="{rng.uniform(0, WIDTH):.1f}" cy="{rng.uniform(0, HEIGHT):.1f}" '
            f'r="{rng.uniform(0.6, 1.6):.1f}" fill="rgb({rng.randint(60, 200)},{rng.randint(60, 200)},'
            f'{rng.randint(60, 200)})"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


def data_url(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
