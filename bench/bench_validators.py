"""Throughput of the identity/number validators (values per second, median of several runs).

Bulk inventory imports call ``validate`` tens of thousands of times, so each kind is timed over
~20,000 pre-generated values (about 2% invalid, refused with InvalidField). No AWS needed.

Run: ``python bench/bench_validators.py`` (or import and call ``run()``).
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chalicelib.kernel.errors import InvalidField
from chalicelib.kernel.validators import KINDS, validate

N_VALUES = 20_000
INVALID_SHARE = 0.02
TODAY = date(2025, 6, 1)

_DIGITS = "0123456789"
_GB11643_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
_VIN_ALPHABET = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"
_VIN_VALUES = dict(
    zip(
        _VIN_ALPHABET,
        [*range(10), 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 7, 9, 2, 3, 4, 5, 6, 7, 8, 9],
        strict=True,
    )
)
_VIN_WEIGHTS = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2]
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
# Real-looking county codes so the county table is exercised on its normal (known) path.
_COUNTIES = ["110105", "310104", "440305", "320583", "510107", "330106", "420111", "370212"]
_WMIS = ["LFV", "LSV", "LGX", "LBV", "LHG", "JHM", "WBA", "1M8"]


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choices(_DIGITS, k=n))


def _gb11643(rng: random.Random, region: str) -> str:
    born = date(1950, 1, 1) + timedelta(days=rng.randrange(25_000))
    body = f"{region}{born:%Y%m%d}{_digits(rng, 3)}"
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, _GB11643_WEIGHTS, strict=True)) % 11]


def _vin(rng: random.Random) -> str:
    raw = rng.choice(_WMIS) + "".join(rng.choices(_VIN_ALPHABET, k=14))
    total = sum(_VIN_VALUES[c] * w for c, w in zip(raw, _VIN_WEIGHTS, strict=True)) % 11
    return raw[:8] + ("X" if total == 10 else str(total)) + raw[9:]


def _uscc(rng: random.Random) -> str:
    body = "91" + rng.choice(_COUNTIES) + "".join(rng.choices(_USCC_ALPHABET, k=9))
    total = sum(_USCC_ALPHABET.index(c) * pow(3, i, 31) for i, c in enumerate(body))
    return body + _USCC_ALPHABET[(31 - total % 31) % 31]


def _luhn(body: str) -> str:
    total = 0
    for i, c in enumerate(reversed(body)):
        d = int(c) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


def _iccid(rng: random.Random) -> str:
    issuer = rng.choice(["00", "02", "04", "07", "08", "01", "06", "09", "03", "11", "15"])
    if issuer in ("01", "06", "09", "03", "11"):
        return _luhn(f"8986{issuer}{_digits(rng, 13)}")
    return f"8986{issuer}" + "".join(rng.choices("0123456789ABCDEF", k=14))


_MSISDN_SEGMENTS = ["1440", "1441", "148", "146", "1410", "10648", "10646", "10649"]

GENERATORS: dict[str, Callable[[random.Random], str]] = {
    "resident_id": lambda rng: _gb11643(rng, rng.choice(_COUNTIES)),
    "hk_macau_permit": lambda rng: _gb11643(rng, rng.choice(["810000", "820000"])),
    "taiwan_permit": lambda rng: _gb11643(rng, "830000"),
    "foreign_permanent_id": lambda rng: _gb11643(
        rng, "9" + rng.choice(["11", "31", "44"]) + rng.choice(["840", "392"])
    ),
    "hk_macau_pass": lambda rng: rng.choice("HM") + _digits(rng, rng.choice([8, 10])),
    "taiwan_pass": lambda rng: _digits(rng, 8),
    "passport": lambda rng: rng.choice("EGPD") + _digits(rng, 8),
    "uscc": _uscc,
    "vin": _vin,
    "iccid": _iccid,
    "mobile": lambda rng: "1" + rng.choice("3456789") + _digits(rng, 9),
    "msisdn": lambda rng: (seg := rng.choice(_MSISDN_SEGMENTS)) + _digits(rng, 13 - len(seg)),
}


# Kinds whose last character is checked: changing it exercises the full path (check refused or,
# for USCC, sent to review). For the others a stray "*" is refused by the format check.
_LAST_CHAR_CHECKED = frozenset({"resident_id", "hk_macau_permit", "taiwan_permit", "foreign_permanent_id"})
_LAST_CHAR_CHECKED |= {"uscc", "vin", "iccid"}


def make_values(kind: str, n: int = N_VALUES, seed: int = 7) -> list[str]:
    """``n`` values of ``kind``; about INVALID_SHARE of them are corrupted."""
    rng = random.Random(f"{seed}:{kind}")
    values = [GENERATORS[kind](rng) for _ in range(n)]
    for i in rng.sample(range(n), int(n * INVALID_SHARE)):
        value = values[i]
        if kind in _LAST_CHAR_CHECKED:
            values[i] = value[:-1] + ("7" if value[-1] != "7" else "3")
        else:
            values[i] = value + "*"
    return values


def _one_pass(kind: str, values: list[str]) -> tuple[float, int, int]:
    refused = reviewed = 0
    start = time.perf_counter()
    for value in values:
        try:
            reviewed += validate(kind, value, today=TODAY).review
        except InvalidField:
            refused += 1
    return time.perf_counter() - start, refused, reviewed


def run(repeats: int = 5) -> list[dict[str, object]]:
    """Median throughput per kind over ``repeats`` timed passes (after one warm-up pass)."""
    results: list[dict[str, object]] = []
    for kind in KINDS:
        values = make_values(kind)
        _, refused, reviewed = _one_pass(kind, values)  # warm-up: lazy tables, caches
        timings = [_one_pass(kind, values)[0] for _ in range(repeats)]
        median = statistics.median(timings)
        results.append(
            {
                "kind": kind,
                "values": len(values),
                "refused": refused,
                "reviewed": reviewed,
                "median_s": median,
                "values_per_s": len(values) / median,
            }
        )
    return results


def main() -> None:
    start = time.perf_counter()
    results = run()
    print(f"{'kind':<22}{'values':>8}{'refused':>9}{'reviewed':>10}{'median values/s':>18}")
    for row in results:
        print(
            f"{row['kind']!s:<22}{row['values']:>8}{row['refused']:>9}{row['reviewed']:>10}"
            f"{row['values_per_s']:>18,.0f}"
        )
    print(f"total {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
