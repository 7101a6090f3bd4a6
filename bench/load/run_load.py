"""``make load``: the local stack under the locust scenario (``bench/load/locustfile.py``) at 10, 30 and
60 owners at a time, one table per level.

The runner starts its own stack as ``make run`` does (``python -m chalicelib.local.run``) on free
loopback ports, with the abuse limits lifted (every simulated owner calls from 127.0.0.1: the load
measures throughput, not the limits), and imports a pool of vehicles whose sales records name the
simulated owners' phones (one owner, one phone, one car). The owners register with synthetic identities,
at most ``CARDS_PER_ID_LIMIT`` owners to one (``scenario.identity_of``), so that the rule of ten cards
per ID (一证多卡, 第十一条) refuses none of the load's registrations: each identity is registered with the
sandbox authority and gets its ID card photo before the first level whose owners use it. The head-turn
frames and the card's back are made here, once, before any level runs.

Each level runs headless for ``--ramp`` seconds of spawning and ``--seconds`` measured (the ramp's
figures are dropped), with locust's CSV stats kept in ``--out``. The table per level: requests/s, p50
and p95 per step, failures, 5xx, connection resets; and the CPU each process of the stack used (cores
busy). ``--profile`` profiles the API and the moto server with yappi over the last level's measured
window (``chalicelib.local.profiling``; the reports land in ``--out``/profiles).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from scenario import (  # noqa: E402 - beside this file
    Level,
    identities_needed,
    identity_of,
    level_table,
    owner_phone,
    read_stats,
    synthetic_people,
)

from chalicelib.local.serving import (  # noqa: E402 - the project, once on the path
    ONE_LOOPBACK_CLIENT,
    STACK_SERVERS,
    free_ports,
    local_stack_env,
)

BIN = Path(sys.executable).parent
FACES = ROOT.parent / "shared" / "faces"
CARD_PORTRAIT = "obama_video_1080p.jpg"
LIVE_PERSON = "obama_1.jpg"
STARTUP_SECONDS = 180.0

#: What a load run changes of the local stage's settings: every owner calls from 127.0.0.1 with the same
#: client, so the limits per IP, per device and per platform are lifted (they are proved in their own
#: tests), and so is the face attempts' limit of a person. Every synthetic identity's card shows the same
#: face and every registrant turns the same live face, so one face, one identity (一脸多证,
#: ``face_dedup``) is lifted too: it would send every identity's registrations but the first's to review.
LIFTED_LIMITS = {
    **ONE_LOOPBACK_CLIENT,
    "CHEKA_SMS_RESEND_SECONDS": "0",
    "CHEKA_SMS_GLOBAL_BUDGET_PER_HOUR": "1000000",
    "CHEKA_OPEN_REGISTRATIONS_PER_OWNER": "100",
    "CHEKA_OPEN_FLOWS_PER_OWNER": "100",
    "CHEKA_FACE_ATTEMPTS_PER_PERSON_DAY": "1000000",
    "CHEKA_FACE_DEDUP": "false",
}


class Stack:
    """The local stack this run started, and what the run needs of it."""

    def __init__(self, out: Path, profile: bool) -> None:
        self.ports = dict(zip(STACK_SERVERS, free_ports(len(STACK_SERVERS)), strict=True))
        self.api = f"http://127.0.0.1:{self.ports['api']}"
        self.log = out / "stack.log"
        self.profiles = out / "profiles" if profile else None
        # With --profile, the API and moto profile themselves into that folder.
        profiling = {} if self.profiles is None else {"CHEKA_LOCAL_PROFILE": str(self.profiles)}
        self.env = local_stack_env(self.ports, out / "stack.json", {**LIFTED_LIMITS, **profiling})
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "chalicelib.local.run"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the local stack exited ({self.proc.returncode}); see {self.log}")
            with (
                contextlib.suppress(OSError, urllib.error.HTTPError),
                urllib.request.urlopen(self.api + "/health", timeout=5) as answer,  # loopback stack
            ):
                if answer.status == 200:
                    return
            time.sleep(0.5)
        raise SystemExit(f"/health did not answer within {STARTUP_SECONDS:.0f} s; see {self.log}")

    def stop(self) -> None:
        """SIGTERM the runner (it stops its children, each in its process group); SIGKILL what stays."""
        if self.proc is None:
            return
        below = _descendants(self.proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        for pid, started in below:
            if _start_time(pid) == started:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)

    def pids(self) -> dict[str, int]:
        """The stack's server processes by name: ``api`` (chalice local), ``moto``."""
        found: dict[str, int] = {}
        if self.proc is None:
            return found
        for pid, _ in _descendants(self.proc.pid):
            with contextlib.suppress(OSError):
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if b"chalicelib.local.gateway" in argv:
                    found["api"] = pid
                elif b"chalicelib.local.moto_server" in argv:
                    found["moto"] = pid
        return found

    def cheka(self, *args: str) -> str:
        done = subprocess.run(
            [str(BIN / "cheka"), *args], cwd=ROOT, env=self.env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise SystemExit(f"cheka {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
        return done.stdout


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _descendants(pid: int) -> list[tuple[int, str]]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    out: list[tuple[int, str]] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for child, its_parent in parents.items():
            if its_parent == parent:
                started = _start_time(child)
                if started is not None:
                    out.append((child, started))
                    todo.append(child)
    return out


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- what the owners need -----------------------------------------------------------------------------


def pool_csv(
    first: int, count: int, seed: int, people: list[dict[str, Any]]
) -> tuple[str, list[dict[str, Any]]]:
    """An inventory file of ``count`` vehicles, one card each, the sales record of the ``i``-th naming
    owner ``first + i``'s phone; and the owners' rows: phone, VIN, the identity they register with
    (``people[identity_of(first + i, CARDS_PER_ID_LIMIT)]``) and the name of its ID card photo."""
    from chalicelib.cards.domain.limits import CARDS_PER_ID_LIMIT
    from chalicelib.cards.inventory import COLUMNS
    from chalicelib.local.synthetic import inventory_rows

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    owners = []
    for i, row in enumerate(inventory_rows(count, seed=seed)):
        phone = owner_phone(first + i)
        writer.writerow({**row, "owner_phone": phone})
        k = identity_of(first + i, CARDS_PER_ID_LIMIT)
        person = {key: people[k][key] for key in ("id_number", "name", "address")}
        owners.append({"phone": phone, "vin": row["vin"], "person": person, "front": front_name(k)})
    return out.getvalue(), owners


def front_name(identity: int) -> str:
    """The file name of identity ``identity``'s ID card photo (人像面) among the assets."""
    return f"id_front-{identity}.jpg"


def make_identities(
    folder: Path, people: list[dict[str, Any]], indexes: Iterable[int], authority_url: str
) -> None:
    """For each identity of ``indexes``: its registration, with the card's portrait (a real face), with
    the sandbox authority, and its ID card photo (人像面) in ``folder``."""
    from chalicelib.adapters.authority.sandbox import SandboxIdentityAuthority
    from chalicelib.local.documents import id_front

    authority = SandboxIdentityAuthority(authority_url)
    portrait = (FACES / CARD_PORTRAIT).read_bytes()
    for k in indexes:
        person = people[k]
        authority.register_citizen(person["name"], person["id_number"], portrait)
        front = id_front(
            name=person["name"],
            sex=person["sex"],
            birth_date=date.fromisoformat(person["birth_date"]),
            address=person["address"],
            id_number=person["id_number"],
            portrait=FACES / CARD_PORTRAIT,
            fmt="JPEG",
        )
        (folder / front_name(k)).write_bytes(front)


def make_assets(folder: Path) -> None:
    """The ID card's back (each identity's front is made with it: ``make_identities``) and the head-turn
    frames of the live person for each direction a challenge can ask for (base64, as the client sends)."""
    from chalicelib.adapters.faces.local import LocalFaceEngine
    from chalicelib.local.documents import NO_FONT, cjk_font_path, id_back
    from chalicelib.verification.domain.liveness import LivenessDirection
    from tests.liveness_frames import handheld, nodding_burst, turning_frames

    if cjk_font_path() is None:
        raise SystemExit(f"{NO_FONT} (`make system-deps` installs it)")
    missing = [name for name in (CARD_PORTRAIT, LIVE_PERSON) if not (FACES / name).is_file()]
    if missing:
        raise SystemExit(f"face photos {', '.join(missing)} not found in {FACES}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "id_back.jpg").write_bytes(id_back(fmt="JPEG"))
    engine = LocalFaceEngine()
    bursts = {}
    for turn in LivenessDirection:
        make = nodding_burst if turn.axis == "pitch" else turning_frames
        frames = handheld(make(engine, LIVE_PERSON, turn.sign))
        bursts[turn.value] = [base64.b64encode(frame).decode() for frame in frames]
    (folder / "bursts.json").write_text(json.dumps(bursts))


# -- a level ------------------------------------------------------------------------------------------


def run_level(
    stack: Stack,
    users: int,
    ramp: int,
    seconds: int,
    pool: Path,
    out: Path,
    *,
    profile: bool,
    classes: tuple[str, ...] = (),
) -> Level:
    prefix = out / f"users-{users}"
    summary = out / f"users-{users}-summary.json"
    env = {
        **os.environ,
        "LOAD_POOL": str(pool),
        "LOAD_SUMMARY": str(summary),
        "PYTHONPATH": str(ROOT),
    }
    command = [
        str(BIN / "locust"),
        "-f",
        str(HERE / "locustfile.py"),
        "--headless",
        "--users",
        str(users),
        "--spawn-rate",
        f"{max(users / ramp, 1):.2f}",
        "--run-time",
        f"{ramp + seconds}s",
        "--reset-stats",
        "--csv",
        str(prefix),
        "--host",
        stack.api,
        "--only-summary",
        "--loglevel",
        "WARNING",
        *classes,
    ]
    pids = stack.pids()
    with (out / f"users-{users}-locust.log").open("wb") as log:
        locust = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        time.sleep(ramp + 1)
        before = {name: _cpu_seconds(pid) for name, pid in {**pids, "locust": locust.pid}.items()}
        measured_from = time.monotonic()
        if profile:
            for pid in pids.values():
                os.kill(pid, signal.SIGUSR1)
        time.sleep(max(seconds - 3, 1))
        window = time.monotonic() - measured_from
        after = {name: _cpu_seconds(pid) for name, pid in {**pids, "locust": locust.pid}.items()}
        if profile:
            for pid in pids.values():
                os.kill(pid, signal.SIGUSR1)
        locust.wait(timeout=ramp + seconds + 120)
    if profile and stack.profiles is not None:
        # Each process writes its report once it has gathered its stats: wait for them before going on.
        deadline = time.monotonic() + 300
        while len(list(stack.profiles.glob("*.txt"))) < len(pids) and time.monotonic() < deadline:
            time.sleep(1)
    steps, total = read_stats(Path(f"{prefix}_stats.csv"))
    counts = json.loads(summary.read_text()) if summary.exists() else {}
    return Level(
        users=users,
        seconds=seconds,
        steps=steps,
        total=total,
        server_errors=int(counts.get("server_errors", 0)),
        unavailable=int(counts.get("unavailable", 0)),
        drop_unavailable=int(counts.get("drop_unavailable", 0)),
        resets=int(counts.get("resets", 0)),
        connection_errors=int(counts.get("connection_errors", 0)),
        registrations=int(counts.get("registrations", 0)),
        starts=int(counts.get("starts", 0)),
        cpu={name: (after[name] - before[name]) / window for name in before},
    )


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", default="10,30,60", help="levels: owners at a time (comma-separated)")
    parser.add_argument("--seconds", type=int, default=60, help="measured seconds per level (10–600)")
    parser.add_argument("--ramp", type=int, default=10, help="seconds of spawning before each level")
    parser.add_argument("--pool", type=int, default=600, help="owners (phone + car) imported per level")
    parser.add_argument("--out", type=Path, default=None, help="folder for the CSV stats and logs")
    parser.add_argument("--profile", action="store_true", help="profile the API and moto in the last level")
    parser.add_argument(
        "--only",
        choices=("Starter", "Registrant"),
        default=None,
        help="one kind of owner only (default: four starters to one registrant)",
    )
    args = parser.parse_args(argv)
    levels = [int(u) for u in args.users.split(",") if u.strip()]
    if not levels or not all(1 <= u <= 200 for u in levels) or not 10 <= args.seconds <= 600:
        parser.error("levels must be 1–200 users, --seconds 10–600 (the load is bounded)")
    out = args.out or Path("/tmp") / f"cheka-load-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"commit {_commit()}; {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}; out {out}",
        flush=True,
    )

    started = time.monotonic()
    make_assets(out / "assets")
    print(f"photos and head-turn frames made ({time.monotonic() - started:.0f} s)", flush=True)
    stack = Stack(out, args.profile)
    try:
        stack.start()
        print(f"stack up at {stack.api} ({time.monotonic() - started:.0f} s)", flush=True)
        from chalicelib.cards.domain.limits import CARDS_PER_ID_LIMIT
        from chalicelib.local.documents import PERSON_ID_NUMBER

        people = synthetic_people(
            identities_needed(len(levels) * args.pool, CARDS_PER_ID_LIMIT), taken={PERSON_ID_NUMBER}
        )
        made: set[int] = set()
        for n, users in enumerate(levels):
            # Each level's owners and cars, imported just before it (moto's store grows with them), and
            # the identities they register with, made and registered with the sandbox authority (an
            # identity whose owners span two levels is made for the first).
            first = n * args.pool
            needed = range(
                identity_of(first, CARDS_PER_ID_LIMIT),
                identity_of(first + args.pool - 1, CARDS_PER_ID_LIMIT) + 1,
            )
            authority = f"http://127.0.0.1:{stack.ports['authority']}"
            make_identities(out / "assets", people, [k for k in needed if k not in made], authority)
            made.update(needed)
            body, owners = pool_csv(first, args.pool, seed=4242 + n, people=people)
            inventory = out / f"inventory-{n}.csv"
            inventory.write_text(body)
            stack.cheka("import-inventory", str(inventory))
            pool = out / f"pool-{n}.json"
            pool.write_text(json.dumps({"owners": owners, "assets": str(out / "assets")}))
            print(
                f"{args.pool} owners' cars imported, their identities registered "
                f"({time.monotonic() - started:.0f} s)",
                flush=True,
            )
            last = n == len(levels) - 1
            only = (args.only,) if args.only else ()
            level = run_level(
                stack, users, args.ramp, args.seconds, pool, out, profile=args.profile and last, classes=only
            )
            print(f"\n{level_table(level)}  (load average {os.getloadavg()[0]:.1f})\n", flush=True)
            if level.starts >= args.pool:
                print(f"the pool of {args.pool} owners ran out: run again with a larger --pool", flush=True)
    finally:
        stack.stop()
    if args.profile and stack.profiles is not None:
        for report in sorted(stack.profiles.glob("*.txt")):
            print(f"profile: {report}")
    print(f"CSV stats and logs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
