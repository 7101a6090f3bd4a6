"""The operator's first hour with ``cheka``: it finds the local stack ``make run`` started without any
exported variable, says every error in one line, counts the outbox per kind of push, shows a card in
the operator's words and China time; and the landing page links what a local stack offers."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from chalicelib.cards.domain.inventory import CardState
from chalicelib.core import deps
from chalicelib.kernel.clock import CHINA
from chalicelib.kernel.operators import Operator
from chalicelib.local.serving import free_ports
from chalicelib.local.state import read_state, remove_state, state_doc, write_state
from chalicelib.operators.domain.messages import CallbackOutcome
from tests.integration.test_lifecycle import (
    World,
    answer,
    drain,
    import_cards,
    make_world,
    person,
    register,
)

CHEKA = str(Path(sys.executable).parent / "cheka")
ROOT = Path(__file__).resolve().parents[2]
OWNER = "u" + "0123456789abcdef" * 2  # an owner's subject, as an SMS login makes it


def _dead_pid() -> int:
    """The id of a process that has ended."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


def _bare_env(**extra: str) -> dict[str, str]:
    """The environment of a shell where nothing was exported: no CHEKA_, AWS_ or POWERTOOLS_ variable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHEKA_", "AWS_", "POWERTOOLS_"))}
    env.update(extra)
    return env


def cheka(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHEKA, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture
def moto_server() -> Iterator[str]:
    """The embedded AWS of ``make run`` (moto's server with its patches) on a free loopback port."""
    port = free_ports(1)[0]
    proc = subprocess.Popen(
        [sys.executable, "-m", "chalicelib.local.moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        else:
            pytest.fail("the moto server did not start")
        yield f"http://127.0.0.1:{port}|{proc.pid}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


# ------------------------------------------------------------------------- finding the local stack


def test_the_cli_finds_the_running_local_stack_from_its_state_file_without_exported_variables(
    moto_server: str, tmp_path: Path
) -> None:
    from chalicelib.core.config import Settings

    moto, pid = moto_server.split("|")
    port = int(moto.rsplit(":", 1)[1])
    # Given the state file `make run` writes once its stack is up (its settings: a port not the default)
    state = tmp_path / "stack.json"
    settings = Settings(stage="local", moto_port=port)
    environ = {"CHEKA_STAGE": "local", "CHEKA_MOTO_PORT": str(port)}
    write_state(state, state_doc(int(pid), datetime.now(UTC), settings, environ, {"open_vins": ["X"]}))
    assert oct(state.stat().st_mode & 0o777) == "0o600"
    env = _bare_env(CHEKA_LOCAL_STATE_FILE=str(state))

    # When the stack has no tables yet, the CLI says so in one line
    missing = cheka("outbox", "status", env=env)
    assert missing.returncode == 3
    assert "cheka bootstrap" in one_line(missing.stderr)
    assert "Traceback" not in missing.stderr

    # When the operator seeds and reads it, with nothing exported
    seeded = cheka("seed", "--vehicles", "5", env=env)
    assert seeded.returncode == 0, seeded.stderr
    seed = json.loads(seeded.stdout)
    shown = cheka("vehicle", seed["registered_vins"][0], env=env)
    assert shown.returncode == 0, shown.stderr
    iccid = json.loads(shown.stdout)["cards"][0]["iccid"]
    card = json.loads(cheka("card", "show", iccid, env=env).stdout)
    status = json.loads(cheka("outbox", "status", env=env).stdout)

    # Then each answer is the stack's: the seed's registrations wait for the worker that is not running
    assert card["state"] == "登记中 (pending)"
    assert [e["by"] for e in card["history"]] == ["演示数据 (cheka seed)"] * 2
    assert status["by_kind"]["register"]["queued"] == 3
    assert status["reads"][1].startswith("outbox table, scanned")


def test_a_state_file_of_a_stack_that_is_gone_is_ignored_and_the_stack_owner_removes_only_its_own(
    tmp_path: Path,
) -> None:
    from chalicelib.core.config import Settings
    from chalicelib.local.state import find_stack

    closed = free_ports(1)[0]
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(gone.stdout)
    state = tmp_path / "stack.json"
    settings = Settings(stage="local", moto_port=closed, local_state_file=str(state))
    write_state(state, state_doc(dead_pid, datetime.now(UTC), settings, {"CHEKA_MOTO_PORT": str(closed)}, {}))
    recorded = read_state(state)
    assert recorded is not None
    assert recorded.moto == f"http://127.0.0.1:{closed}"
    assert find_stack(settings) is None  # its process is gone
    remove_state(state, os.getpid())  # not ours: stays
    assert state.exists()
    remove_state(state, dead_pid)
    assert not state.exists()
    # a configured endpoint or another stage never reads the file
    write_state(state, state_doc(os.getpid(), datetime.now(UTC), settings, {}, {}))
    assert find_stack(Settings(stage="dev", local_state_file=str(state))) is None
    assert (
        find_stack(Settings(stage="local", aws_endpoint_url="http://x", local_state_file=str(state))) is None
    )


# ------------------------------------------------------------------------------- one-line errors


def test_every_cli_error_is_one_line_without_a_traceback_and_debug_shows_it(tmp_path: Path) -> None:
    from chalicelib.core.config import Settings

    closed = str(free_ports(1)[0])
    nothing = _bare_env(CHEKA_MOTO_PORT=closed, CHEKA_LOCAL_STATE_FILE="")
    # nothing answers where the local stack's AWS should be
    down = cheka("card", "show", "89860112345678901237", env=nothing)
    assert down.returncode == 3
    line = one_line(down.stderr)
    assert line.startswith("cheka: nothing answers at http://127.0.0.1:" + closed)
    assert "make run" in line
    assert down.stdout == ""
    # a state file left by a stack that is gone is told of, in the same line
    state = tmp_path / "stack.json"
    started = datetime(2026, 11, 29, 12, 15, tzinfo=UTC)
    write_state(state, state_doc(_dead_pid(), started, Settings(), {"CHEKA_MOTO_PORT": closed}, {}))
    with_state = {**nothing, "CHEKA_LOCAL_STATE_FILE": str(state)}
    stale = cheka("card", "show", "89860112345678901237", env=with_state)
    assert stale.returncode == 3
    assert one_line(stale.stderr).endswith(f"(the stack {state} records, started 2026-11-29 20:15, is gone)")
    # --debug lets the traceback through
    debug = cheka("--debug", "card", "show", "89860112345678901237", env=nothing)
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr
    # a setting that is not valid is named
    bad = cheka("outbox", "status", env={**nothing, "CHEKA_API_PORT": "eighty"})
    assert bad.returncode == 1
    assert one_line(bad.stderr) == (
        "cheka: the setting CHEKA_API_PORT is invalid: Input should be a valid integer, unable to parse "
        "string as an integer"
    )
    # a refusal is its JSON on one line
    refused = cheka("card", "show", "123", env=nothing)
    assert refused.returncode == 2
    assert json.loads(one_line(refused.stdout))["error"]["code"] == "iccid.length"
    # a deployed stage without credentials
    prod = _bare_env(
        CHEKA_STAGE="prod",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
    )
    no_creds = cheka("outbox", "status", env=prod)
    assert no_creds.returncode == 3
    assert one_line(no_creds.stderr).startswith("cheka: no AWS credentials for the prod stage")
    for result in (down, bad, refused, no_creds):
        assert "Traceback" not in result.stdout + result.stderr


# ---------------------------------------------------------------------------------- outbox status


def _status(*args: str) -> dict[str, Any]:
    from chalicelib.cli.cards import outbox

    result = CliRunner().invoke(outbox, ["status", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.output)
    return doc


def test_outbox_status_counts_each_kind_of_push_queued_waiting_accepted_refused_dead(world: World) -> None:
    cards = import_cards(Operator.CHINA_UNICOM, 6, seed=61)
    holder = person(61)
    # two registrations accepted, one of them then de-registered (accepted)
    register(world, cards[0], holder)
    deregistration = register(world, cards[1], holder)
    out = world.lifecycle.deregister(cards[1].iccid, OWNER, "owner de-registration (实名注销)")
    assert out.record_id is not None
    assert out.record_id != deregistration
    drain(world)
    world.lifecycle.apply_callback(answer(out.record_id, cards[1], CallbackOutcome.ACCEPTED))
    # one refused by the operator
    refused = world.lifecycle.submit_registration(cards[2].iccid, holder, OWNER).record_id
    assert refused is not None
    drain(world)
    world.lifecycle.apply_callback(
        answer(
            refused, cards[2], CallbackOutcome.REJECTED, reason=("id.mismatch", "证件信息不符", "ID mismatch")
        )
    )
    # one received by the operator, its decision not in yet
    world.lifecycle.submit_registration(cards[3].iccid, holder, OWNER)
    drain(world)
    # one the operator's interface refused as a request: dead
    dead = world.lifecycle.submit_registration(cards[4].iccid, holder, OWNER).record_id
    assert dead is not None
    world.operator.refuse = True
    world.dispatcher.dispatch(dead)
    world.operator.refuse = False
    # one committed, not pushed yet
    world.lifecycle.submit_registration(cards[5].iccid, holder, OWNER)

    doc = _status()

    register_row = doc["by_kind"]["register"]
    assert {
        k: register_row[k] for k in ("queued", "waiting_for_operator", "accepted", "refused", "dead")
    } == {
        "queued": 1,
        "waiting_for_operator": 1,
        "accepted": 2,
        "refused": 1,
        "dead": 1,
    }
    assert register_row["sent"] == 4  # waiting + accepted + refused: what reached the operator
    assert register_row["name"] == "实名登记"
    assert doc["by_kind"]["deregister"]["accepted"] == 1
    assert doc["total"]["accepted"] == 3
    assert doc["total"]["dead"] == 1
    assert [r.split(" ")[0] for r in doc["reads"]] == ["outbox", "outbox"]
    # without the scan (a deployed stage's default) the decided pushes are not counted, and it says so
    light = _status("--no-scan")
    assert light["by_kind"]["register"]["accepted"] is None
    assert light["by_kind"]["register"]["queued"] == 1
    assert "PushAccepted" in light["reads"][1]


# ------------------------------------------------------------------------------------- card show


def _show(iccid: str) -> tuple[dict[str, Any], str]:
    from chalicelib.cli.cards import card

    result = CliRunner().invoke(card, ["show", iccid], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output), result.output


def test_card_show_speaks_the_operators_language_in_china_time_without_bookkeeping(world: World) -> None:
    (card,) = import_cards(Operator.CHINA_UNICOM, 1, seed=62)
    seller, buyer = person(62, name="王小明"), person(63, name="赵六")
    record = world.lifecycle.submit_registration(card.iccid, seller, OWNER).record_id
    assert record is not None
    drain(world)
    world.lifecycle.apply_callback(answer(record, card, CallbackOutcome.ACCEPTED))
    # the OEM corrects the holder from the command line; the operator has not answered yet
    from chalicelib.cli.cards import card as card_group

    result = CliRunner().invoke(
        card_group, ["transfer", card.iccid, "--holder", buyer.party_id, "--reason", "录入错误"]
    )
    assert result.exit_code == 0, result.output

    doc, text = _show(card.iccid)

    assert doc["state"] == "已登记 (registered)"
    assert doc["operator"] == "中国联通 (china_unicom)"
    assert doc["holder"].startswith("王*")
    assert "*" in doc["holder"].split(" · ")[1]
    assert doc["transfer_to"].startswith("赵*")
    assert doc["push"]["kind"] == "过户 (transfer)"
    assert doc["push"]["status"] == "待推送 (pending)"
    assert [(e["event"], e["by"]) for e in doc["history"]] == [
        ("导入库存 (imported)", "平台账号 import"),
        ("提交实名登记 (registration_submitted)", "车主 (账号 u01234567…)"),
        ("运营商接受实名登记 (registration_accepted)", "运营商 中国联通"),
        ("申请过户 (transfer_requested)", "运维人员 (cheka 命令行)"),
    ]
    assert doc["history"][-1]["note"] == f"to {doc['transfer_to']}; OEM correction: 录入错误"
    # China time, to the minute
    events = deps.inventory_repo().history(card.iccid)
    assert doc["history"][1]["at"] == events[1].at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", e["at"]) for e in doc["history"])
    # no bookkeeping: versions, hashes, party ids, push ids, the full ID number
    for hidden in ("version", "seq", "hash", "holder_id", "message_id", "record_id", "counted"):
        assert hidden not in text
    for secret in (seller.party_id, buyer.party_id, seller.id_hash, record):
        assert secret not in text
    assert card.holder_id is None or card.holder_id not in text


def test_card_show_names_the_operators_refusal_and_the_retry_of_a_dead_push(world: World) -> None:
    first, second = import_cards(Operator.CHINA_MOBILE, 2, seed=64)
    holder = person(64)
    refused = world.lifecycle.submit_registration(first.iccid, holder, OWNER).record_id
    assert refused is not None
    drain(world)
    world.lifecycle.apply_callback(
        answer(
            refused, first, CallbackOutcome.REJECTED, reason=("id.mismatch", "证件信息不符", "ID mismatch")
        )
    )
    doc, _ = _show(first.iccid)
    assert doc["state"] == "未登记 (unregistered)"
    assert doc["last_refusal"] == "证件信息不符 (id.mismatch)"
    assert doc["history"][-1]["by"] == "运营商 中国移动"

    dead = world.lifecycle.submit_registration(second.iccid, holder, OWNER).record_id
    assert dead is not None
    world.operator.refuse = True
    world.dispatcher.dispatch(dead)
    doc, _ = _show(second.iccid)
    assert doc["push"]["status"].endswith("(dead)")
    assert doc["push"]["retry_with"] == f"cheka outbox retry {dead}"
    assert deps.inventory_repo().get_card(second.iccid).state is CardState.PENDING  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------- landing page


def test_the_landing_page_carries_the_demo_vehicles_and_the_sms_drop_of_a_local_stage(api: Any) -> None:
    from chalicelib.local.seed import seed

    before = api.http.get("/").body.decode()
    seeded = seed(deps.inventory_repo(), deps.party_repo(), deps.lifecycle(), deps.keyed_hasher(), vehicles=8)

    page = api.http.get("/")

    html = page.body.decode()
    assert page.status_code == 200
    assert 'href="/h5"' in html
    assert "{{LANDING_DATA}}" not in html
    found = re.search(r'<script id="landing-data" type="application/json">(.*?)</script>', html)
    assert found is not None
    data = json.loads(found.group(1))
    assert data["stage"] == "test"
    assert data["sms_drop"] is True
    assert data["demo"]["open_vins"] == seeded.open_vins
    assert data["demo"]["registered_vins"] == seeded.registered_vins
    assert '"open_vins": []' in before  # before the seed: none, and the page says how to seed
    assert "cheka seed" in html


@pytest.fixture
def world(aws: None) -> World:
    return make_world()


def test_a_deployed_stages_landing_page_offers_no_demo_vehicles_nor_sms_drop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chalicelib.api.system import _landing_data
    from chalicelib.core.settings import get_settings

    monkeypatch.setenv("CHEKA_STAGE", "prod")
    get_settings.cache_clear()
    try:
        assert _landing_data() == {"stage": "prod", "sms_drop": False, "head_unit": False, "demo": None}
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
