"""The load scenario's pure parts: who the simulated owners are (their phones, and the synthetic
identities they register with), where the load may go, and the table a level's figures are printed in. No
locust here (it patches the standard library when imported): the locustfile and the runner both use this
module, and so do its unit tests.
"""

from __future__ import annotations

import csv
import ipaddress
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

#: The prefixes simulated owners' phones start with: 10,000 owners each (the last four digits count them).
PHONE_PREFIXES = ("139", "138", "137", "136", "135", "150", "151", "152", "186", "187", "188", "158")

#: The steps of the two kinds of owner, in the order the table prints them (locust's request names).
SIGN_IN_STEPS = ("login code", "(dev) SMS drop", "login")
START_STEPS = ("start", "confirm vehicle", "status")
WHOLE_STEPS = (
    "phone code",
    "phone",
    "identity",
    "consent texts",
    "biometric consent",
    "upload: presign",
    "upload: S3 POST",
    "upload: complete",
    "OCR",
    "liveness session",
    "liveness result",
    "consents",
    "submit",
)
STEPS = SIGN_IN_STEPS + START_STEPS + WHOLE_STEPS


class NotLoopback(ValueError):
    """The load may only go to this machine's loopback interface."""


def loopback_only(url: str) -> str:
    """``url`` if its host is this machine's loopback (127.0.0.0/8, ::1 or ``localhost``); else raises
    :class:`NotLoopback`. Names other than ``localhost`` are refused without being resolved."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NotLoopback(f"not an http(s) URL with a host: {url!r}")
    host = parts.hostname
    if host == "localhost":
        return url
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise NotLoopback(
            f"{host!r} is not a loopback address (the load runs on this machine only)"
        ) from None
    if not address.is_loopback:
        raise NotLoopback(f"{host} is not a loopback address (the load runs on this machine only)")
    return url


def owner_phone(n: int) -> str:
    """The phone of the ``n``-th simulated owner: distinct, and distinct once masked (``139****0042``:
    the SMS drop keeps masked numbers, and an owner finds their code there by the masked number)."""
    if not 0 <= n < len(PHONE_PREFIXES) * 10_000:
        raise ValueError(f"owner {n} out of range")
    prefix, last = divmod(n, 10_000)
    return f"{PHONE_PREFIXES[prefix]}{(n * 7919) % 10_000:04d}{last:04d}"


def masked(phone: str) -> str:
    """The phone as the SMS drop shows it (first three and last four digits)."""
    return phone[:3] + "****" + phone[-4:]


def identity_of(owner: int, cards_per_identity: int) -> int:
    """The synthetic identity (its index) the ``owner``-th simulated owner registers with: owners
    ``k * cards_per_identity`` to ``(k + 1) * cards_per_identity - 1`` share identity ``k``.

    An owner registers at most one card (one car, one card, one round, never taken again), so no identity
    holds more than ``cards_per_identity`` cards whatever the number of owners at a time, the share of
    them who register and the operators of their cards: with the rule's limit (一证多卡, 第十一条) as
    ``cards_per_identity``, no registration of the load is refused ``cards_per_id_exceeded``."""
    if cards_per_identity < 1:
        raise ValueError(f"{cards_per_identity} cards per identity")
    if owner < 0:
        raise ValueError(f"owner {owner} out of range")
    return owner // cards_per_identity


def identities_needed(owners: int, cards_per_identity: int) -> int:
    """How many identities ``owners`` owners (numbered from 0) register with (``identity_of``)."""
    return identity_of(owners - 1, cards_per_identity) + 1 if owners > 0 else 0


def synthetic_people(count: int, seed: int = 4242, taken: Iterable[str] = ()) -> list[dict[str, Any]]:
    """``count`` invented identities (``chalicelib.local.identities``), the same for the same ``seed``,
    their ID numbers distinct from each other and from ``taken`` (the local stack's own synthetic people):
    name, ID number, sex, birth date (ISO) and address, as the ID card is drawn and the identity typed in.
    """
    import random

    from chalicelib.local.identities import invent_identity  # the runner only: not in the locustfile

    rng = random.Random(seed)  # synthetic data, repeatable on purpose
    seen = set(taken)
    people: list[dict[str, Any]] = []
    while len(people) < count:
        person = invent_identity(rng)
        if person.id_number in seen:
            continue
        seen.add(person.id_number)
        people.append(
            {
                "id_number": person.id_number,
                "name": person.name,
                "sex": person.sex,
                "birth_date": person.birth_date.isoformat(),
                "address": person.address,
            }
        )
    return people


@dataclass(frozen=True)
class StepFigures:
    """One step (locust's request name) over a level's measured window."""

    name: str
    requests: int
    failures: int
    per_second: float
    p50_ms: float
    p95_ms: float


def read_stats(path: Path) -> tuple[list[StepFigures], StepFigures | None]:
    """Locust's ``*_stats.csv``: the steps, and the ``Aggregated`` row (None if the file has none)."""
    steps: list[StepFigures] = []
    total = None
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            figures = _figures(row)
            if row.get("Name") == "Aggregated":
                total = figures
            else:
                steps.append(figures)
    return steps, total


def _number(value: str | None) -> float:
    try:
        return float(value) if value not in (None, "", "N/A") else math.nan
    except ValueError:
        return math.nan


def _figures(row: Mapping[str, str]) -> StepFigures:
    return StepFigures(
        name=row.get("Name", ""),
        requests=int(_number(row.get("Request Count")) or 0),
        failures=int(_number(row.get("Failure Count")) or 0),
        per_second=_number(row.get("Requests/s")),
        p50_ms=_number(row.get("50%")),
        p95_ms=_number(row.get("95%")),
    )


def ordered(steps: Iterable[StepFigures]) -> list[StepFigures]:
    """The steps in the scenario's order (names it does not know last, alphabetically)."""
    rank = {name: i for i, name in enumerate(STEPS)}
    return sorted(steps, key=lambda s: (rank.get(s.name, len(rank)), s.name))


@dataclass(frozen=True)
class Level:
    """What one level (a number of users at a time) gave."""

    users: int
    seconds: float
    steps: Sequence[StepFigures]
    total: StepFigures | None
    #: Requests answered 5xx other than 503, requests whose connection was reset, other connection errors.
    server_errors: int
    resets: int
    connection_errors: int
    #: Requests answered 503 (a retryable refusal in the error model, with Retry-After), and how many of
    #: them were the harness's reads of the dev SMS drop.
    unavailable: int = 0
    drop_unavailable: int = 0
    #: Whole registrations submitted, and sign-in-and-start rounds done, in the window.
    registrations: int = 0
    starts: int = 0
    #: CPU seconds per second of wall time of each process measured (1.0 = one core busy).
    cpu: Mapping[str, float] | None = None


def level_table(level: Level) -> str:
    """The level's figures as a Markdown table, the README's columns, and a line of totals."""
    lines = [
        f"### {level.users} at a time ({level.seconds:.0f} s measured)",
        "",
        "| step | requests | req/s | p50 ms | p95 ms | failures |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for step in ordered(level.steps):
        lines.append(
            f"| {step.name} | {step.requests} | {step.per_second:.2f} | {_ms(step.p50_ms)} | "
            f"{_ms(step.p95_ms)} | {step.failures} |"
        )
    total = level.total
    if total is not None:
        lines.append(
            f"| **all** | {total.requests} | **{total.per_second:.1f}** | {_ms(total.p50_ms)} | "
            f"{_ms(total.p95_ms)} | {total.failures} |"
        )
    lines.append("")
    lines.append(
        f"5xx other than 503: {level.server_errors}; 503 (retryable): {level.unavailable} "
        f"({level.drop_unavailable} of them reading the dev SMS drop); "
        f"connection resets: {level.resets}; other connection errors: "
        f"{level.connection_errors}; sign-in-and-start rounds: {level.starts}; whole registrations "
        f"submitted: {level.registrations}"
    )
    if level.cpu:
        lines.append(
            "CPU (cores busy): "
            + ", ".join(f"{name} {value:.2f}" for name, value in sorted(level.cpu.items()))
        )
    return "\n".join(lines)


def _ms(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.0f}"
