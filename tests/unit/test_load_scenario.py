"""The load scenario's pure parts (``bench/load/scenario.py``): the load goes to loopback only, every
simulated owner has a phone of their own that stays their own once masked, and a level's locust CSV
becomes the table the README reports. The local servers' profile report sums time by package."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from chalicelib.kernel.personal import mask_phone
from chalicelib.kernel.validators import mobile
from chalicelib.local.profiling import package_of, report

SCENARIO_FILE = Path(__file__).resolve().parents[2] / "bench" / "load" / "scenario.py"


@pytest.fixture(scope="module")
def scenario() -> ModuleType:
    spec = importlib.util.spec_from_file_location("load_scenario", SCENARIO_FILE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module's names
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000", "http://127.3.4.5", "http://localhost:9/x", "http://[::1]:8000/"]
)
def test_loopback_urls_are_accepted(scenario: ModuleType, url: str) -> None:
    assert scenario.loopback_only(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1:8000",
        "https://example.com",
        "http://0.0.0.0:8000",
        "http://[2001:db8::1]",
        "ftp://127.0.0.1",
        "",
    ],
)
def test_other_hosts_are_refused_without_a_lookup(scenario: ModuleType, url: str) -> None:
    with pytest.raises(scenario.NotLoopback):
        scenario.loopback_only(url)


def test_owner_phones_are_valid_distinct_and_distinct_once_masked(scenario: ModuleType) -> None:
    phones = [scenario.owner_phone(n) for n in range(0, 120_000, 7)]
    assert all(mobile(p).value == p for p in phones)
    assert len(set(phones)) == len(phones)
    shown = [scenario.masked(p) for p in phones]
    assert shown == [mask_phone(p) for p in phones]  # what the SMS drop shows
    assert len(set(shown)) == len(shown)
    with pytest.raises(ValueError, match="out of range"):
        scenario.owner_phone(120_000)


STATS_CSV = """Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,\
Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,\
98%,99%,99.9%,99.99%,100%
GET,status,120,0,40,45,10,300,900,2.0,0.0,40,50,60,70,90,110,150,200,300,300,300
POST,login,100,2,80,90,20,900,700,1.6,0.03,80,90,100,120,150,210,400,600,900,900,900
POST,start,110,0,60,70,20,500,800,1.8,0.0,60,70,80,90,100,130,200,300,500,500,500
,Aggregated,330,2,60,65,10,900,800,5.4,0.03,60,70,80,90,110,150,300,500,900,900,900
"""


def test_a_levels_stats_become_the_table_in_the_scenarios_order(scenario: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "users-10_stats.csv"
    path.write_text(STATS_CSV)
    steps, total = scenario.read_stats(path)
    assert [s.name for s in scenario.ordered(steps)] == ["login", "start", "status"]
    assert total.requests == 330
    assert total.per_second == 5.4
    assert total.p95_ms == 150
    level = scenario.Level(
        users=10, seconds=60, steps=steps, total=total, server_errors=0, resets=0, connection_errors=1,
        starts=40, registrations=3, cpu={"api": 0.97, "moto": 0.41},
    )  # fmt: skip
    table = scenario.level_table(level).splitlines()
    assert table[0] == "### 10 at a time (60 s measured)"
    assert "| login | 100 | 1.60 | 80 | 210 | 2 |" in table
    assert "| **all** | 330 | **5.4** | 60 | 150 | 2 |" in table
    assert table.index("| login | 100 | 1.60 | 80 | 210 | 2 |") < table.index(
        "| status | 120 | 2.00 | 40 | 110 | 0 |"
    )
    assert any(
        line.startswith(
            "5xx other than 503: 0; 503 (retryable): 0 (0 of them reading the dev SMS drop); "
            "connection resets: 0; other connection errors: 1"
        )
        for line in table
    )
    assert "CPU (cores busy): api 0.97, moto 0.41" in table


def test_the_profile_report_sums_own_time_by_package() -> None:
    rows = [
        ("/x/.venv/lib/python3.11/site-packages/pydantic/main.py:10 validate", 10, 2.0, 3.0),
        ("/x/.venv/lib/python3.11/site-packages/pydantic/fields.py:5 get", 5, 1.0, 1.0),
        ("/work/main/chalicelib/registration/service.py:40 start", 3, 0.5, 4.0),
        ("/usr/lib/python3.11/socketserver.py:700 process_request", 3, 0.5, 4.5),
    ]
    assert package_of(rows[2][0]) == "chalicelib.registration"
    assert package_of(rows[3][0]) == "stdlib:socketserver"
    text = report("api", "cpu", 10.0, rows)
    assert "      3.00 s   75.0 %  pydantic" in text
    assert text.index("pydantic") < text.index("chalicelib.registration")
