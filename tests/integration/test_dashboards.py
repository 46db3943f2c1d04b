"""The shipped dashboards and alert rules, against what l0 really emits.

- the committed dashboard JSON is what ``dashboards/generate.py`` generates;
- the dashboards are provisioning-ready (datasource variables, no hard-coded UIDs, the
  ``service``/``provider``/``model`` filters) and their TraceQL panels select no message
  content and only attributes l0 emits (read from ``l0.observability.semconv``);
- ``promtool check rules`` and ``promtool test rules`` pass on ``dashboards/alerts.yaml``;
- **every PromQL expression** of every dashboard panel, every template variable and every
  alert rule returns data from a real Prometheus that scraped a chaos workload run through
  l0 with the OpenTelemetry SDK's Prometheus exporter (``dashboard_workload.py``, in a
  subprocess of its own). A renamed metric, a renamed label or a typo fails here.

Prometheus and promtool come from Debian's ``prometheus`` package (``scripts/ensure-prometheus.sh``
installs it). Without them the Prometheus tests skip where apt is unavailable and fail where it
is (the package should have been installed).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from l0.observability import semconv

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"
ALERTS = DASHBOARDS / "alerts.yaml"
ALERT_TESTS = DASHBOARDS / "alerts.test.yaml"
WORKLOAD = Path(__file__).with_name("dashboard_workload.py")

SCRAPE_INTERVAL = 1.0
DEADLINE = 30.0
"""Seconds any one wait (Prometheus ready, a scrape, a workload round) may take."""


# --- reading the dashboards -----------------------------------------------------------------


def dashboards() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(DASHBOARDS.glob("*.json"))
    }


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside (collapsed) rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


@dataclass(frozen=True)
class PromQuery:
    where: str
    expr: str
    instant: bool
    legend: str = ""


def prom_queries() -> list[PromQuery]:
    """Every PromQL expression of every panel (Prometheus targets only)."""
    found = []
    for name, dashboard in dashboards().items():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                if (target.get("datasource") or panel.get("datasource") or {}).get(
                    "type"
                ) != "prometheus":
                    continue
                found.append(
                    PromQuery(
                        f"{name}: {panel['title']} [{target['refId']}]",
                        target["expr"],
                        bool(target.get("instant")),
                        target.get("legendFormat", ""),
                    )
                )
    return found


def traceql_queries() -> list[tuple[str, str]]:
    return [
        (f"{name}: {panel['title']}", target["query"])
        for name, dashboard in dashboards().items()
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
        if (target.get("datasource") or {}).get("type") == "tempo"
    ]


def variable_queries() -> list[tuple[str, str]]:
    return [
        (f"{name}: ${variable['name']}", variable["query"])
        for name, dashboard in dashboards().items()
        for variable in dashboard["templating"]["list"]
        if variable["type"] == "query"
    ]


def alert_rules() -> list[dict[str, Any]]:
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


def substitute(expr: str, values: dict[str, str], rate: str, window: str) -> str:
    """Grafana's template variables, as Grafana would expand them."""
    expr = expr.replace("$__rate_interval", rate).replace("$__range", window)
    for name, value in values.items():
        expr = expr.replace(f"${{{name}:regex}}", value).replace(f"${{{name}}}", value)
        expr = re.sub(rf"\${name}\b", value, expr)
    assert "$" not in expr, f"unexpanded variable in {expr}"
    return expr


# --- the generated JSON and its structure ---------------------------------------------------


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("l0_dashboards", DASHBOARDS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    except ImportError as error:  # pragma: no cover - a dev-extra dependency is missing
        pytest.fail(f"dashboards/generate.py needs grafana-foundation-sdk (the dev extra): {error}")
    return module


def test_committed_dashboards_are_what_generate_py_writes() -> None:
    generator = _generator()
    assert set(generator.DASHBOARDS) == set(dashboards()), "a dashboard JSON without generator"
    for name, build in generator.DASHBOARDS.items():
        committed = (DASHBOARDS / name).read_text(encoding="utf-8")
        assert committed == generator.render(build), (
            f"dashboards/{name} is out of date: run python dashboards/generate.py"
        )


def test_docs_list_which_panel_reads_which_metric() -> None:
    """``docs/observability.md`` carries the table ``generate.py --docs`` prints."""
    generator = _generator()
    docs = (ROOT / "docs" / "observability.md").read_text(encoding="utf-8")
    heading = "## Dashboards: which panel reads which metric"
    assert heading in docs
    section = docs.split(heading, 1)[1].split("\n## ", 1)[0]
    for name, dashboard in dashboards().items():
        for line in generator.panel_table(dashboard).splitlines():
            assert line in section, f"docs/observability.md misses ({name}): {line}"


def test_dashboards_are_provisioning_ready() -> None:
    for name, dashboard in dashboards().items():
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["prometheus"]["type"] == "datasource"
        assert variables["prometheus"]["query"] == "prometheus"
        assert variables["tempo"]["type"] == "datasource"
        assert variables["tempo"]["query"] == "tempo"
        for filter_name in ("service", "provider", "model"):
            assert variables[filter_name]["type"] == "query", (name, filter_name)
            assert variables[filter_name]["includeAll"], (name, filter_name)
        assert dashboard.get("uid"), name
        assert "id" not in dashboard or dashboard["id"] is None, name
        # Every datasource reference is a variable: no UID of someone's Grafana.
        text = json.dumps(dashboard)
        for uid in re.findall(r'"uid": "([^"]*)"', text):
            assert uid in ("${prometheus}", "${tempo}", dashboard["uid"]), (name, uid)
        # No filter on a telemetry SDK or an instrumentation scope: other emitters of the same
        # metrics (another GenAI instrumentation, the Collector's translation) must match.
        for query in [q.expr for q in prom_queries()] + [q for _, q in traceql_queries()]:
            assert "telemetry_sdk" not in query and "otel_scope" not in query, query
            assert "telemetry.sdk" not in query, query
        ids = [panel["id"] for panel in panels(dashboard)]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"


def _emitted_span_attributes() -> set[str]:
    """Every attribute name l0's semconv module defines (what l0 can put on a span)."""
    names = {
        value
        for key, value in vars(semconv).items()
        if key.isupper()
        and isinstance(value, str)
        and "." in value
        and not key.startswith(("METRIC_", "SPAN_", "EVENT_", "OPT_IN", "LATEST"))
    }
    return names


CONTENT_ATTRIBUTES = {
    semconv.GEN_AI_INPUT_MESSAGES,
    semconv.GEN_AI_OUTPUT_MESSAGES,
    semconv.GEN_AI_SYSTEM_INSTRUCTIONS,
}
TRACEQL_INTRINSICS = {"name", "status", "kind", "duration", "statusMessage", "rootName"}
RESOURCE_ATTRIBUTES = {"service.name"}


def traceql_attributes(query: str) -> tuple[set[str], set[str], set[str]]:
    """(span attributes, resource attributes, intrinsics) a TraceQL query names."""
    without_strings = re.sub(r'"[^"]*"', '""', query)
    span = set(re.findall(r"\bspan\.([A-Za-z_][\w.]*)", without_strings))
    resource = set(re.findall(r"\bresource\.([A-Za-z_][\w.]*)", without_strings))
    bare = re.sub(r"\b(span|resource)\.[\w.]+", "", without_strings)
    intrinsics = set(re.findall(r"\b([a-zA-Z]\w*)\s*(?:=|!=|=~|>|<)", bare))
    return span, resource, intrinsics


def test_traceql_panels_select_no_content_and_only_l0_attributes() -> None:
    queries = traceql_queries()
    assert len(queries) >= 4
    emitted = _emitted_span_attributes()
    assert emitted >= CONTENT_ATTRIBUTES
    for where, query in queries:
        span, resource, intrinsics = traceql_attributes(query)
        assert span, where
        assert not span & CONTENT_ATTRIBUTES, f"{where} selects message content"
        assert span <= emitted, f"{where}: {sorted(span - emitted)} are not l0 attributes"
        assert resource <= RESOURCE_ATTRIBUTES, where
        assert intrinsics <= TRACEQL_INTRINSICS, where
        assert "{" in query and "}" in query and query.count("(") == query.count(")"), where


# --- promtool ---------------------------------------------------------------------------------


def _tool(name: str) -> str:
    """The path of ``prometheus`` or ``promtool``; skip (no apt) or fail (apt) without it."""
    found = shutil.which(name)
    if found:
        return found
    hint = "run scripts/ensure-prometheus.sh (apt-get install -y prometheus)"
    if shutil.which("apt-get") and os.environ.get("L0_ALLOW_MISSING_PROMETHEUS") != "1":
        pytest.fail(f"{name} is not installed but apt is available: {hint}")
    pytest.skip(f"{name} is not installed and apt is unavailable here: {hint} on Debian/Ubuntu")


def test_promtool_checks_and_unit_tests_the_alert_rules() -> None:
    promtool = _tool("promtool")
    checked = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in checked.stdout
    tested = subprocess.run(
        [promtool, "test", "rules", ALERT_TESTS.name],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=DASHBOARDS,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # Every alert is exercised by the unit tests.
    spec = yaml.safe_load(ALERT_TESTS.read_text(encoding="utf-8"))
    tested_alerts = {
        case["alertname"] for test in spec["tests"] for case in test.get("alert_rule_test", [])
    }
    assert tested_alerts == {rule["alert"] for rule in alert_rules()}


# --- Prometheus with a real workload ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Prometheus:
    """A Prometheus server on loopback, scraping the workload every second."""

    def __init__(self, binary: str, workdir: Path, target_port: int, job: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.job = job
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {
                    "job_name": job,
                    "scrape_interval": "1s",
                    "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}],
                }
            ],
        }
        config_file = workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.log = (workdir / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.url}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())

    def wait_ready(self) -> None:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited: {self.logs()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.05)  # polling for readiness, not timing anything
        raise AssertionError(f"prometheus not ready in {DEADLINE}s: {self.logs()}")

    def wait_scrape_after(self, moment: float) -> None:
        """Wait until Prometheus holds a sample of the workload scraped after ``moment``."""
        deadline = time.monotonic() + DEADLINE
        query = f'max(timestamp(l0_sessions_total{{job="{self.job}"}}))'
        while time.monotonic() < deadline:
            result = self.get("/api/v1/query", query=query)["data"]["result"]
            if result and float(result[0]["value"][1]) > moment:
                return
            time.sleep(SCRAPE_INTERVAL / 10)
        raise AssertionError(f"no scrape of the workload after {moment}: {self.logs()}")

    def query(self, expr: str, instant: bool, start: float, end: float) -> list[Any]:
        if instant:
            data = self.get("/api/v1/query", query=expr, time=str(end))
        else:
            data = self.get(
                "/api/v1/query_range", query=expr, start=str(start), end=str(end), step="1"
            )
        assert data["status"] == "success", data
        result: list[Any] = data["data"]["result"]
        return result

    def logs(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(encoding="utf-8")[-3000:]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


class Workload:
    """``dashboard_workload.py`` in a subprocess: rounds on request, ``/metrics`` meanwhile."""

    def __init__(self) -> None:
        env = dict(os.environ)
        env.pop("OTEL_SEMCONV_STABILITY_OPT_IN", None)  # the dashboards read the default names
        self.process = subprocess.Popen(
            [sys.executable, str(WORKLOAD)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        self.port = int(self._expect("METRICS")[0])

    def _expect(self, word: str) -> list[str]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        parts = line.split()
        assert parts and parts[0] == word, f"workload said {line!r}, exit {self.process.poll()}"
        return parts[1:]

    def round(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.write("round\n")
        self.process.stdin.flush()
        return int(self._expect("ROUND")[1])

    def stop(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            try:
                self.process.stdin.write("stop\n")
                self.process.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Scraped:
    prometheus: Prometheus
    started: float
    ended: float


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    """Prometheus after it scraped two rounds of the chaos workload (one before, one after
    every counter's first increase: ``rate()`` ignores a series' first value)."""
    binary = _tool("prometheus")
    sys.path.insert(0, str(WORKLOAD.parent))
    try:
        from dashboard_workload import SERVICE
    finally:
        sys.path.pop(0)
    workload = Workload()
    prometheus = None
    try:
        prometheus = Prometheus(
            binary, tmp_path_factory.mktemp("prometheus"), workload.port, SERVICE
        )
        prometheus.wait_ready()
        started = time.time()
        for _ in range(2):
            assert workload.round() > 20
            prometheus.wait_scrape_after(time.time())
        yield Scraped(prometheus, started - 2, time.time())
    finally:
        workload.stop()
        if prometheus is not None:
            prometheus.stop()


VALUES_ALL = {"service": ".*", "provider": ".*", "model": ".*"}
"""The filters at "All" (their allValue)."""


def _specific() -> dict[str, str]:
    from dashboard_workload import SERVICE  # on sys.path: see the caller

    return {"service": SERVICE, "provider": "openai", "model": "gpt-4o"}


def _has_data(result: list[Any]) -> bool:
    for series in result:
        samples = series.get("values") or ([series["value"]] if "value" in series else [])
        if any(math.isfinite(float(value)) for _, value in samples):
            return True
    return False


def test_every_panel_query_returns_data(scraped: Scraped) -> None:
    sys.path.insert(0, str(WORKLOAD.parent))
    try:
        specific = _specific()
    finally:
        sys.path.pop(0)
    queries = prom_queries()
    assert len(queries) >= 30
    empty = []
    for values in (VALUES_ALL, specific):
        for query in queries:
            expr = substitute(query.expr, values, rate="1m", window="10m")
            result = scraped.prometheus.query(expr, query.instant, scraped.started, scraped.ended)
            if not _has_data(result):
                empty.append(f"{query.where} with {values}: {expr}")
    assert not empty, "queries without data:\n" + "\n".join(empty)


def test_every_variable_query_returns_values(scraped: Scraped) -> None:
    for where, query in variable_queries():
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", query)
        assert match, f"{where}: {query}"
        selector = substitute(match.group(1), VALUES_ALL, rate="1m", window="10m")
        label = match.group(2)
        result = scraped.prometheus.query(
            f"count by ({label}) ({selector})", True, scraped.started, scraped.ended
        )
        values = {series["metric"].get(label, "") for series in result}
        assert values - {""}, f"{where}: no value of {label} in {selector}"


def test_every_alert_fires_on_the_chaos_workload(scraped: Scraped) -> None:
    silent = []
    for rule in alert_rules():
        result = scraped.prometheus.query(rule["expr"], True, scraped.started, scraped.ended)
        if not _has_data(result):
            silent.append(f"{rule['alert']} ({rule.get('labels', {})}): {rule['expr']}")
    assert not silent, "alerts that do not fire on a storm of failures:\n" + "\n".join(silent)


_PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset",
}  # fmt: skip


def referenced(expr: str, legend: str = "") -> tuple[set[str], set[str]]:
    """(metric names, label names) an expression (and its legend) names."""
    text = re.sub(r'"[^"]*"', '""', expr)
    metrics = set(re.findall(r"\b([a-zA-Z_:][\w:]*)\s*[{\[]", text)) - _PROMQL_WORDS
    labels: set[str] = set()
    for group in re.findall(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", text
    ):
        labels |= {label.strip() for label in group.split(",") if label.strip()}
    for selector in re.findall(r"\{([^}]*)\}", text):
        labels |= set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", selector))
    labels |= set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
    return metrics, labels


def test_every_metric_and_label_a_query_names_exists(scraped: Scraped) -> None:
    """A typo in a grouping label returns data all the same (one series with an empty label):
    every metric and label a panel, variable or alert names must exist in what l0 emits."""
    cache: dict[str, set[str]] = {}

    def labels_of(metric: str) -> set[str]:
        if metric not in cache:
            series = scraped.prometheus.get("/api/v1/series", **{"match[]": metric})["data"]
            cache[metric] = {label for labels in series for label in labels}
        return cache[metric]

    checked = [(q.where, q.expr, q.legend) for q in prom_queries()]
    checked += [(where, query, "") for where, query in variable_queries()]
    checked += [(rule["alert"], rule["expr"], "") for rule in alert_rules()]
    wrong = []
    for where, expr, legend in checked:
        metrics, labels = referenced(expr.replace("label_values(", "("), legend)
        metrics.discard("label_values")
        known: set[str] = {"le"}
        for metric in metrics:
            found = labels_of(metric)
            if not found:
                wrong.append(f"{where}: no metric {metric}")
            known |= found
        for label in sorted(labels - known):
            wrong.append(f"{where}: no label {label} on {sorted(metrics)}")
    assert not wrong, "\n".join(wrong)


def test_prometheus_loaded_every_alert_rule(scraped: Scraped) -> None:
    groups = scraped.prometheus.get("/api/v1/rules")["data"]["groups"]
    loaded = [rule for group in groups for rule in group["rules"]]
    assert len(loaded) == len(alert_rules())
    assert all(rule["health"] in ("ok", "unknown") for rule in loaded), loaded


def test_metric_names_follow_the_documented_translation(scraped: Scraped) -> None:
    """The names the README promises: dots → underscores, ``_seconds``, ``_total``,
    ``_bucket``; ``{unit}`` annotations dropped; ``service.name`` in ``target_info``."""
    names = set(scraped.prometheus.get("/api/v1/label/__name__/values")["data"])
    expected = {
        "l0_sessions_total",
        "l0_session_duration_seconds_bucket",
        "l0_attempts_total",
        "l0_retries_total",
        "l0_fallbacks_total",
        "l0_guardrail_violations_total",
        "l0_errors_total",
        "l0_stream_stalls_total",
        "l0_stream_chunk_gap_max_seconds_bucket",
        "gen_ai_client_operation_duration_seconds_bucket",
        "gen_ai_client_operation_time_to_first_chunk_seconds_bucket",
        "gen_ai_client_token_usage_bucket",
        "target_info",
    }
    assert expected <= names, sorted(expected - names)
    for metric in (
        semconv.METRIC_SESSIONS,
        semconv.METRIC_ATTEMPTS,
        semconv.METRIC_RETRIES,
        semconv.METRIC_FALLBACKS,
        semconv.METRIC_GUARDRAIL_VIOLATIONS,
        semconv.METRIC_ERRORS,
        semconv.METRIC_STREAM_STALLS,
    ):
        assert metric.replace(".", "_") + "_total" in names, metric
    info = scraped.prometheus.query(
        'target_info{service_name!=""}', True, scraped.started, scraped.ended
    )
    assert info and info[0]["metric"]["job"] == scraped.prometheus.job
