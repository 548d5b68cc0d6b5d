"""``casestream analytics dashboard`` in a real browser: chdb store -> FastAPI -> Chromium.

The hand-made data set of the SQL unit tests goes through the projection into a chdb store
in a tmp dir; the dashboard is served by uvicorn in a thread on a free port and loaded in
headless Debian Chromium (``/usr/bin/chromium``): ``--dump-dom`` gives the rendered DOM,
whose tiles and chart points must equal what ``compute_kpis`` and the SQL give, and
``--screenshot`` leaves ``artifacts/dashboard.png`` to look at.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import uvicorn

from projections.analytics import AnalyticsProjection, ChdbStore, KpiParams, compute_kpis
from projections.analytics.dashboard import TILES, create_dashboard, format_value, hourly_series
from projections.analytics.store import ensure_schema
from streams.settings import Settings
from tests.unit.test_analytics_sql import PREFIX, SINCE, UNTIL, build_dataset

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
PARAMS = KpiParams(cost_per_call=0.01)
RANGE = {"since": SINCE.isoformat(), "until": UNTIL.isoformat()}
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("dashboard") / "analytics"
    with ChdbStore(path) as store:
        ensure_schema(store)
        AnalyticsProjection(store, Settings(topic_prefix=PREFIX)).apply(build_dataset())
        yield path  # the dashboard opens its own session on the same path (shared)


@pytest.fixture(scope="module")
def store(store_path: Path) -> Iterator[ChdbStore]:
    with ChdbStore(store_path) as reader:
        yield reader


@pytest.fixture(scope="module")
def base_url(store_path: Path) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_dashboard(lambda: ChdbStore(store_path), PARAMS)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def chromium(*args: str) -> str:
    """Run headless Chromium once with a fresh profile; its stdout."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(
            f"{CHROMIUM} not found: the dashboard test needs Debian's Chromium "
            "(apt-get install -y chromium)"
        )
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        done = subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class Dom(HTMLParser):
    """Tiles (data-kpi -> data-value and shown value), chart points and tenant options."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tiles: dict[str, dict[str, str]] = {}
        self.points: dict[str, list[tuple[str, str]]] = {}
        self.options: list[tuple[str, bool]] = []
        self._tile: str | None = None
        self._in_value = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "data-kpi" in a:
            self._tile = a["data-kpi"]
            self.tiles[self._tile] = {"raw": a["data-value"], "shown": ""}
        self._in_value = self._tile is not None and a.get("class") == "value"
        if tag == "rect" and "data-hour" in a:
            self.points.setdefault("messages", []).append((a["data-hour"], a["data-value"]))
        if tag == "circle":
            self.points.setdefault(a["data-line"], []).append((a["data-hour"], a["data-value"]))
        if tag == "option":
            self.options.append((a["value"], "selected" in a))

    def handle_data(self, data: str) -> None:
        if self._in_value and self._tile is not None:
            self.tiles[self._tile]["shown"] += data

    def handle_endtag(self, tag: str) -> None:
        self._in_value = False


def page(base_url: str, **query: str) -> Dom:
    return Dom(chromium("--dump-dom", f"{base_url}/?{urlencode(query)}"))


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def assert_tiles_match(dom: Dom, store: ChdbStore, tenant: str) -> None:
    summary = compute_kpis(store, tenant, SINCE, UNTIL, PARAMS).summary
    assert set(dom.tiles) == {t.name for t in TILES}
    for tile in TILES:
        value = summary[tile.name]
        assert dom.tiles[tile.name] == {"raw": repr(value), "shown": format_value(tile.kind, value)}


def test_page_tiles_and_charts_equal_the_sql(base_url: str, store: ChdbStore) -> None:
    dom = page(base_url, tenant="acme", **RANGE)
    assert dom.options == [("acme", True), ("other", False)]
    assert_tiles_match(dom, store, "acme")
    # Hand-checked against the data set (see test_analytics_sql): 8 messages in range,
    # 2 of 5 conversations deflected, 2 escalated, 1 of 3 ratings satisfied.
    shown = {name: tile["shown"] for name, tile in dom.tiles.items()}
    assert shown["messages"] == "8"
    assert shown["deflection_rate"] == "40.0%" and shown["escalation_rate"] == "40.0%"
    assert shown["csat"] == "33.3%"
    series = hourly_series(store, "acme", SINCE, UNTIL, PARAMS)
    hours = [(r["hour"], str(r["messages"])) for r in series["messages_per_hour"]]
    assert dom.points["messages"] == hours
    assert [h[1] for h in hours] == ["5", "2", "1"]  # 10:00, 11:00, 12:00
    for line in ("avg_valence", "avg_frustration"):
        expected = [(r["hour"], repr(r[line])) for r in series["sentiment_per_hour"]]
        assert dom.points[line] == expected and len(expected) == 3


def test_tenant_is_chosen_in_the_page(base_url: str, store: ChdbStore) -> None:
    other = page(base_url, tenant="other", **RANGE)
    assert other.options == [("acme", False), ("other", True)]
    assert_tiles_match(other, store, "other")
    assert other.tiles["messages"]["shown"] == "2"
    first = page(base_url, **RANGE)  # no tenant: the first one
    assert first.options[0] == ("acme", True)
    assert_tiles_match(first, store, "acme")


def test_json_endpoints_agree_with_compute_kpis(base_url: str, store: ChdbStore) -> None:
    assert get_json(f"{base_url}/api/tenants") == {"tenants": ["acme", "other"]}
    query = urlencode({"tenant": "acme", **RANGE})
    report = compute_kpis(store, "acme", SINCE, UNTIL, PARAMS)
    kpis = get_json(f"{base_url}/api/kpis?{query}")
    assert kpis["summary"] == report.summary and kpis["tenant"] == "acme"
    assert kpis["decisions"] == report.tables["decisions"]
    assert [t["name"] for t in kpis["tiles"]] == [t.name for t in TILES]
    series = get_json(f"{base_url}/api/series?{query}")
    assert {k: series[k] for k in ("messages_per_hour", "sentiment_per_hour")} == (
        hourly_series(store, "acme", SINCE, UNTIL, PARAMS)
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        get_json(f"{base_url}/api/kpis?since=yesterday")
    assert refused.value.code == 400


def test_screenshot_of_the_page(base_url: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    url = f"{base_url}/?{urlencode({'tenant': 'acme', **RANGE})}"
    chromium(f"--screenshot={shot}", "--window-size=1280,900", url)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
