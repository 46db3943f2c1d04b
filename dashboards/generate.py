"""l0's Grafana dashboard, as code: ``python dashboards/generate.py`` writes the JSON beside it.

The JSON files in this folder are generated and committed (so they can be imported or
provisioned without Python); ``tests/integration/test_dashboards.py`` regenerates them and
fails when the committed files differ, then runs every PromQL query against a real Prometheus
fed by a chaos workload through l0. ``--check`` only compares.

Every query reads the Prometheus names of l0's metrics as the OpenTelemetry Prometheus
exporter, the Collector's ``prometheusremotewrite`` exporter and Prometheus' own OTLP receiver
all spell them by default: dots become underscores, the unit ``s`` adds ``_seconds``, counters
end in ``_total``, histograms are ``_bucket``/``_sum``/``_count`` (see ``README.md``).

Built with grafana-foundation-sdk (the ``dev`` extra), pinned to its Grafana 11.6 schema.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import heatmap, prometheus, stat, table, tempo, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm
from grafana_foundation_sdk.models import tempo as tm

from l0.observability import semconv as sc

HERE = Path(__file__).resolve().parent


# --- l0's metrics, as Prometheus names them -------------------------------------------------


def prometheus_name(otel_name: str, unit: str = "", *, counter: bool = False) -> str:
    """The OpenTelemetry → Prometheus name translation every supported path applies by default
    (the SDK's Prometheus exporter; the Collector's prometheusremotewrite exporter with
    ``add_metric_suffixes``; Prometheus' OTLP receiver with ``UnderscoreEscapingWithSuffixes``):
    invalid characters become ``_``, the unit ``s`` adds ``_seconds`` (``{…}`` annotations add
    nothing), a monotonic counter ends in ``_total``. Histograms then get ``_bucket``,
    ``_sum`` and ``_count``."""
    name = re.sub(r"[^a-zA-Z0-9_:]", "_", otel_name)
    suffix = {"s": "seconds"}.get(unit, "")
    if suffix and not name.endswith(f"_{suffix}"):
        name += f"_{suffix}"
    return f"{name}_total" if counter else name


OTEL_NAMES: dict[str, str] = {}
"""Prometheus base name → OpenTelemetry name, for the panel/metric table in the docs."""


def _metric(otel_name: str, unit: str = "", *, counter: bool = False) -> str:
    name = prometheus_name(otel_name, unit, counter=counter)
    OTEL_NAMES[name] = otel_name
    return name


# The names are read from l0's semconv module: a renamed metric regenerates the dashboards
# (and the committed JSON then no longer matches: the test says so).
SESSIONS = _metric(sc.METRIC_SESSIONS, counter=True)
SESSION_DURATION = _metric(sc.METRIC_SESSION_DURATION, "s")
ATTEMPTS = _metric(sc.METRIC_ATTEMPTS, counter=True)
RETRIES = _metric(sc.METRIC_RETRIES, counter=True)
FALLBACKS = _metric(sc.METRIC_FALLBACKS, counter=True)
VIOLATIONS = _metric(sc.METRIC_GUARDRAIL_VIOLATIONS, counter=True)
ERRORS = _metric(sc.METRIC_ERRORS, counter=True)
STALLS = _metric(sc.METRIC_STREAM_STALLS, counter=True)
CHUNK_GAP = _metric(sc.METRIC_CHUNK_GAP_MAX, "s")
DURATION = _metric(sc.METRIC_OPERATION_DURATION, "s")
TTFC = _metric(sc.METRIC_TIME_TO_FIRST_CHUNK, "s")
TOKENS = _metric(sc.METRIC_TOKEN_USAGE)

PROMETHEUS = dm.DataSourceRef(type_val="prometheus", uid="${prometheus}")
TEMPO = dm.DataSourceRef(type_val="tempo", uid="${tempo}")

# Label filters. `job` is the service: Prometheus sets it from the scrape job, and the OTLP
# translations (Collector remote write, Prometheus' OTLP receiver) from `service.name`.
SVC = 'job=~"$service"'
CALL = f'{SVC}, gen_ai_provider_name=~"$provider", gen_ai_request_model=~"$model"'
RATE = "[$__rate_interval]"
RANGE = "[$__range]"

NOT_BY_MODEL = " Filtered by service only: this metric carries no model or provider attribute."

SLOW_FIRST_CHUNK_SECONDS = 2
"""What the dashboard and the TTFC alert call a slow first chunk."""


# --- small builders -------------------------------------------------------------------------


@dataclass
class Query:
    expr: str
    legend: str = "__auto"
    exemplar: bool = False
    instant: bool = False
    fmt: pm.PromQueryFormat | None = None


@dataclass
class Layout:
    """Places panels left to right, wrapping at 24 columns; rows start a new line."""

    y: int = 0
    x: int = 0
    height: int = 0
    next_id: int = 1
    panels: list[Any] = field(default_factory=list)

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            db.Row(title).id(self._id()).grid_pos(dm.GridPos(h=1, w=24, x=0, y=self.y))
        )
        self.y += 1

    def add(self, panel: Any, w: int, h: int) -> None:
        if self.x + w > 24:
            self._newline()
        panel.id(self._id()).grid_pos(dm.GridPos(h=h, w=w, x=self.x, y=self.y))
        self.panels.append(panel)
        self.x += w
        self.height = max(self.height, h)

    def _newline(self) -> None:
        self.y += self.height
        self.x = 0
        self.height = 0

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def _targets(panel: Any, queries: Sequence[Query]) -> Any:
    for index, query in enumerate(queries):
        target = (
            prometheus.Dataquery()
            .ref_id(chr(ord("A") + index))
            .datasource(PROMETHEUS)
            .expr(query.expr)
            .legend_format(query.legend)
        )
        if query.exemplar:
            target.exemplar(True)
        if query.instant:
            target.instant()
        else:
            target.range()
        if query.fmt is not None:
            target.format(query.fmt)
        panel.with_target(target)
    return panel.datasource(PROMETHEUS)


def _thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=value, color=color) for value, color in steps])
    )


def stat_panel(
    title: str,
    description: str,
    query: Query,
    unit: str,
    thresholds: db.ThresholdsConfig | None = None,
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .graph_mode(common.BigValueGraphMode.AREA)
        .color_mode(common.BigValueColorMode.VALUE)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]))
        .no_value("no data")
    )
    panel.thresholds(thresholds or _thresholds((None, "text")))
    return _targets(panel, [query])


def series_panel(
    title: str,
    description: str,
    queries: Sequence[Query],
    unit: str,
    *,
    stacked: bool = False,
    bars: bool = False,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .min(0)
        .legend(
            cb.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(cb.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI))
        .fill_opacity(10)
    )
    if stacked:
        panel.stacking(cb.StackingConfig().mode(common.StackingMode.NORMAL))
    if bars:
        panel.draw_style(common.GraphDrawStyle.BARS).fill_opacity(80)
    return _targets(panel, queries)


def table_panel(title: str, description: str, query: Query) -> table.Panel:
    panel = table.Panel().title(title).description(description)
    return _targets(panel, [query])


def heatmap_panel(title: str, description: str, query: Query) -> heatmap.Panel:
    panel = (
        heatmap.Panel()
        .title(title)
        .description(description)
        .calculate(False)
        .y_axis(heatmap.YAxisConfig().unit("s"))
        .color(
            heatmap.HeatmapColorOptions()
            .mode(_color_mode())
            .scheme("Oranges")
            .fill("dark-orange")
            .steps(64)
        )
        .cell_gap(1)
    )
    return _targets(panel, [query])


def _color_mode() -> Any:
    from grafana_foundation_sdk.models import heatmap as hm

    return hm.HeatmapColorMode.SCHEME


def traces_panel(title: str, description: str, traceql: str) -> table.Panel:
    query = (
        tempo.TempoQuery()
        .ref_id("A")
        .datasource(TEMPO)
        .query_type("traceql")
        .query(traceql)
        .limit(20)
        .table_type(tm.SearchTableType.TRACES)
    )
    return table.Panel().title(title).description(description).datasource(TEMPO).with_target(query)


def quantiles(metric: str, selector: str, by: str, qs: Sequence[float], legend: str) -> list[Query]:
    """``histogram_quantile`` of ``metric`` for each of ``qs``, grouped ``by``."""
    group = f"le, {by}" if by else "le"
    return [
        Query(
            f"histogram_quantile({q}, sum by ({group}) "
            f"(rate({metric}_bucket{{{selector}}}{RATE})))",
            legend=f"p{round(q * 100)} {legend}".strip(),
            exemplar=True,
        )
        for q in qs
    ]


def per_session(numerator: str, by: str) -> str:
    """``numerator`` (a counter, summed by ``by``) per session, both over the rate window."""
    return (
        f"sum by ({by}) (rate({numerator}{RATE})) / ignoring({by}) group_left "
        f"sum(rate({SESSIONS}{{{SVC}}}{RATE}))"
    )


# --- the dashboard --------------------------------------------------------------------------


def variables() -> list[Any]:
    def query(name: str, label: str, expr: str) -> Any:
        return (
            db.QueryVariable(name)
            .label(label)
            .datasource(PROMETHEUS)
            .query(expr)
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dm.VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(dm.VariableOption(selected=True, text="All", value="$__all"))
        )

    calls = f"{DURATION}_count"
    return [
        db.DatasourceVariable("prometheus").label("Prometheus").type("prometheus"),
        db.DatasourceVariable("tempo").label("Tempo").type("tempo"),
        query("service", "Service", f"label_values({SESSIONS}, job)"),
        query(
            "provider",
            "Provider",
            f'label_values({calls}{{job=~"$service"}}, gen_ai_provider_name)',
        ),
        query(
            "model",
            "Model",
            f'label_values({calls}{{job=~"$service", gen_ai_provider_name=~"$provider"}}, '
            "gen_ai_request_model)",
        ),
    ]


def reliability_dashboard() -> db.Dashboard:
    layout = Layout()
    sessions = f"{SESSIONS}{{{SVC}}}"
    ttfc, duration, tokens = TTFC, DURATION, TOKENS

    # --- the 3 a.m. screen: are we healthy, and if not, which model and why --------------
    layout.row("Are we healthy?")
    layout.add(
        stat_panel(
            "Sessions / s",
            "l0 sessions started per second (l0.sessions)." + NOT_BY_MODEL,
            Query(f"sum(rate({sessions}{RATE}))"),
            "reqps",
        ),
        4,
        4,
    )
    layout.add(
        stat_panel(
            "Session error ratio",
            "Sessions that failed for good — every retry and fallback spent — over sessions that "
            "finished (completed or error; cancelled and abandoned ones are the consumer's "
            "choice). l0.sessions." + NOT_BY_MODEL,
            Query(
                f'sum(rate({SESSIONS}{{{SVC}, l0_outcome="error"}}{RATE})) / '
                f'sum(rate({SESSIONS}{{{SVC}, l0_outcome=~"completed|error"}}{RATE}))'
            ),
            "percentunit",
            _thresholds((None, "green"), (0.01, "orange"), (0.05, "red")),
        ),
        4,
        4,
    )
    layout.add(
        stat_panel(
            "Time to first chunk p95",
            "95th percentile of gen_ai.client.operation.time_to_first_chunk (one value per "
            "attempt that received a chunk).",
            Query(f"histogram_quantile(0.95, sum by (le) (rate({ttfc}_bucket{{{CALL}}}{RATE})))"),
            "s",
            _thresholds((None, "green"), (1, "orange"), (SLOW_FIRST_CHUNK_SECONDS, "red")),
        ),
        4,
        4,
    )
    layout.add(
        stat_panel(
            "Call duration p99",
            "99th percentile of gen_ai.client.operation.duration: one chat call (one target) "
            "with all its retries.",
            Query(
                f"histogram_quantile(0.99, sum by (le) (rate({duration}_bucket{{{CALL}}}{RATE})))"
            ),
            "s",
            _thresholds((None, "green"), (20, "orange"), (60, "red")),
        ),
        4,
        4,
    )
    layout.add(
        stat_panel(
            "Fallback rate",
            "Moves to a fallback model per session (l0.fallbacks / l0.sessions)." + NOT_BY_MODEL,
            Query(f"sum(rate({FALLBACKS}{{{SVC}}}{RATE})) / sum(rate({sessions}{RATE}))"),
            "percentunit",
            _thresholds((None, "green"), (0.02, "orange"), (0.1, "red")),
        ),
        4,
        4,
    )
    layout.add(
        stat_panel(
            "Stalled streams",
            "Attempts cut by the initial-token or inter-token timeout, per attempt "
            "(l0.stream.stalls / l0.attempts)." + NOT_BY_MODEL,
            Query(f"sum(rate({STALLS}{{{SVC}}}{RATE})) / sum(rate({ATTEMPTS}{{{SVC}}}{RATE}))"),
            "percentunit",
            _thresholds((None, "green"), (0.01, "orange"), (0.05, "red")),
        ),
        4,
        4,
    )
    layout.add(
        series_panel(
            "Session outcomes",
            "Sessions per second by l0.outcome: completed, error (failed for good), cancelled "
            "(the consumer stopped), abandoned (never read)." + NOT_BY_MODEL,
            [Query(f"sum by (l0_outcome) (rate({sessions}{RATE}))", "{{l0_outcome}}")],
            "reqps",
            stacked=True,
        ),
        8,
        8,
    )
    layout.add(
        series_panel(
            "Why: failed attempts by category",
            "Share of attempts that failed, by l0.error.category and l0.error.code (l0.errors / "
            "l0.attempts). Network and transient failures are retried without spending "
            "`attempts`; content failures (guardrails, drift) spend them; fatal ones go to the "
            "next fallback.",
            [
                Query(
                    f"sum by (l0_error_category, l0_error_code) "
                    f"(rate({ERRORS}{{{CALL}}}{RATE})) "
                    f"/ ignoring(l0_error_category, l0_error_code) group_left "
                    f"sum(rate({ATTEMPTS}{{{CALL}}}{RATE}))",
                    "{{l0_error_category}} · {{l0_error_code}}",
                )
            ],
            "percentunit",
            stacked=True,
        ),
        8,
        8,
    )
    layout.add(
        series_panel(
            "Which model: failed calls by error.type",
            "Share of chat calls (one per target, retries included) that failed, by model and "
            "error.type — the exception that ended the call (gen_ai.client.operation.duration "
            "count).",
            [
                Query(
                    f"sum by (gen_ai_request_model, error_type) "
                    f'(rate({duration}_count{{{CALL}, error_type!=""}}{RATE})) '
                    f"/ ignoring(error_type) group_left sum by (gen_ai_request_model) "
                    f"(rate({duration}_count{{{CALL}}}{RATE}))",
                    "{{gen_ai_request_model}} · {{error_type}}",
                )
            ],
            "percentunit",
        ),
        8,
        8,
    )

    # --- latency ----------------------------------------------------------------------------
    layout.row("Latency")
    layout.add(
        series_panel(
            "Call duration by model",
            "p50 / p95 / p99 of gen_ai.client.operation.duration by gen_ai.request.model: one "
            "chat call with all its retries. Exemplars link to the trace.",
            quantiles(
                duration,
                CALL,
                "gen_ai_request_model",
                (0.5, 0.95, 0.99),
                "{{gen_ai_request_model}}",
            ),
            "s",
        ),
        12,
        8,
    )
    layout.add(
        series_panel(
            "Session duration",
            "p50 / p95 / p99 of l0.session.duration by outcome: what the caller waited, "
            "retries and fallbacks included." + NOT_BY_MODEL,
            quantiles(
                SESSION_DURATION,
                f'{SVC}, l0_outcome=~"completed|error"',
                "l0_outcome",
                (0.5, 0.95, 0.99),
                "{{l0_outcome}}",
            ),
            "s",
        ),
        12,
        8,
    )

    # --- streaming --------------------------------------------------------------------------
    layout.row("Streaming")
    layout.add(
        series_panel(
            "Time to first chunk by model",
            "p50 / p95 of gen_ai.client.operation.time_to_first_chunk by model, per attempt. "
            "Exemplars link to the trace.",
            quantiles(ttfc, CALL, "gen_ai_request_model", (0.5, 0.95), "{{gen_ai_request_model}}"),
            "s",
        ),
        8,
        8,
    )
    layout.add(
        heatmap_panel(
            "Time to first chunk distribution",
            "Attempts per gen_ai.client.operation.time_to_first_chunk bucket.",
            Query(
                f"sum by (le) (increase({ttfc}_bucket{{{CALL}}}{RATE}))",
                "{{le}}",
                fmt=pm.PromQueryFormat.HEATMAP,
            ),
        ),
        8,
        8,
    )
    layout.add(
        series_panel(
            "Longest gap between chunks",
            "p95 / p99 of l0.stream.chunk_gap.max — each stream's longest silence between two "
            "chunks — by model.",
            quantiles(
                CHUNK_GAP,
                CALL,
                "gen_ai_request_model",
                (0.95, 0.99),
                "{{gen_ai_request_model}}",
            ),
            "s",
        ),
        8,
        8,
    )
    layout.add(
        series_panel(
            "Stalls by timer",
            "Streams cut per second by the initial-token or the inter-token timeout "
            "(l0.stream.stalls by l0.error.code)." + NOT_BY_MODEL,
            [
                Query(
                    f"sum by (l0_error_code) (rate({STALLS}{{{SVC}}}{RATE}))",
                    "{{l0_error_code}}",
                )
            ],
            "reqps",
        ),
        8,
        8,
    )
    layout.add(
        series_panel(
            "Cancelled and abandoned sessions",
            "Share of sessions the consumer stopped early (cancelled) or never read "
            "(abandoned): not errors, but a rising share means users give up waiting."
            + NOT_BY_MODEL,
            [
                Query(
                    f"sum by (l0_outcome) "
                    f'(rate({SESSIONS}{{{SVC}, l0_outcome=~"cancelled|abandoned"}}{RATE})) '
                    f"/ ignoring(l0_outcome) group_left sum(rate({sessions}{RATE}))",
                    "{{l0_outcome}}",
                )
            ],
            "percentunit",
        ),
        8,
        8,
    )
    layout.add(
        series_panel(
            "Output tokens / s per call",
            "Generation speed by model: output tokens (gen_ai.client.token.usage) over the time "
            "spent in successful chat calls (gen_ai.client.operation.duration).",
            [
                Query(
                    f"sum by (gen_ai_request_model) "
                    f'(rate({tokens}_sum{{{CALL}, gen_ai_token_type="output"}}{RATE})) '
                    f"/ sum by (gen_ai_request_model) "
                    f'(rate({duration}_sum{{{CALL}, error_type=""}}{RATE}))',
                    "{{gen_ai_request_model}}",
                )
            ],
            "short",
        ),
        8,
        8,
    )

    # --- reliability ------------------------------------------------------------------------
    layout.row("Reliability: retries and fallbacks")
    layout.add(
        series_panel(
            "Retries per session by reason",
            "l0.retries per session, by l0.retry.reason (the failure's category)." + NOT_BY_MODEL,
            [
                Query(
                    per_session(f"{RETRIES}{{{SVC}}}", "l0_retry_reason"),
                    "{{l0_retry_reason}}",
                )
            ],
            "short",
            stacked=True,
        ),
        8,
        8,
    )
    layout.add(
        series_panel(
            "Attempts per session by reason",
            "l0.attempts per session, stacked by l0.attempt.reason: the stack's height is the "
            "mean number of attempts a session needs (1 = every first try worked); the layers "
            "say how many were retries and fallbacks." + NOT_BY_MODEL,
            [
                Query(
                    per_session(f"{ATTEMPTS}{{{SVC}}}", "l0_attempt_reason"),
                    "{{l0_attempt_reason}}",
                )
            ],
            "short",
            stacked=True,
        ),
        8,
        8,
    )
    layout.add(
        series_panel(
            "Fallback rate",
            "Moves to a fallback model per session (l0.fallbacks / l0.sessions)." + NOT_BY_MODEL,
            [
                Query(
                    f"sum(rate({FALLBACKS}{{{SVC}}}{RATE})) / sum(rate({sessions}{RATE}))",
                    "fallbacks per session",
                )
            ],
            "percentunit",
        ),
        8,
        8,
    )
    layout.add(
        table_panel(
            "Fallbacks: from → to",
            "Moves from one model to the next over the dashboard's time range "
            "(l0.fallbacks by l0.fallback.from_model and l0.fallback.to_model).",
            Query(
                "sort_desc(sum by (l0_fallback_from_model, l0_fallback_to_model) "
                f"(increase({FALLBACKS}{{{SVC}}}{RANGE})))",
                instant=True,
                fmt=pm.PromQueryFormat.TABLE,
            ),
        ),
        12,
        8,
    )
    layout.add(
        series_panel(
            "Sessions that gave up",
            "Sessions that ended in error per second — every retry and fallback exhausted, or a "
            "fatal error with no fallback left — beside the failed attempts that led there, by "
            "l0.error.code." + NOT_BY_MODEL,
            [
                Query(
                    f'sum(rate({SESSIONS}{{{SVC}, l0_outcome="error"}}{RATE}))',
                    "sessions failed",
                ),
                Query(
                    f"sum by (l0_error_code) (rate({ERRORS}{{{SVC}}}{RATE}))",
                    "attempts failed: {{l0_error_code}}",
                ),
            ],
            "reqps",
        ),
        12,
        8,
    )

    # --- guardrails -------------------------------------------------------------------------
    layout.row("Guardrails and drift")
    layout.add(
        series_panel(
            "Guardrail violations by rule and severity",
            "l0.guardrail.violations per second by l0.guardrail.rule and "
            "l0.guardrail.severity (warnings included)." + NOT_BY_MODEL,
            [
                Query(
                    "sum by (l0_guardrail_rule, l0_guardrail_severity) "
                    f"(rate({VIOLATIONS}{{{SVC}}}{RATE}))",
                    "{{l0_guardrail_rule}} · {{l0_guardrail_severity}}",
                )
            ],
            "reqps",
            stacked=True,
        ),
        12,
        8,
    )
    layout.add(
        series_panel(
            "Retries caused by guardrails and drift",
            "Attempts failed by a guardrail (GUARDRAIL_VIOLATION) or drift (DRIFT_DETECTED) "
            "per second, by model (l0.errors), and the content retries they caused "
            "(l0.retries, reason content).",
            [
                Query(
                    "sum by (gen_ai_request_model, l0_error_code) "
                    f'(rate({ERRORS}{{{CALL}, l0_error_code=~"GUARDRAIL_VIOLATION|'
                    f'DRIFT_DETECTED"}}{RATE}))',
                    "{{gen_ai_request_model}} · {{l0_error_code}}",
                ),
                Query(
                    f'sum(rate({RETRIES}{{{SVC}, l0_retry_reason="content"}}{RATE}))',
                    "content retries",
                ),
            ],
            "reqps",
        ),
        12,
        8,
    )

    # --- tokens -----------------------------------------------------------------------------
    layout.row("Tokens")
    for kind in ("input", "output"):
        layout.add(
            series_panel(
                f"{kind.capitalize()} tokens by model",
                f"{kind.capitalize()} tokens per interval by model "
                f"(gen_ai.client.token.usage, gen_ai.token.type={kind}), as the provider "
                "reported them.",
                [
                    Query(
                        f"sum by (gen_ai_request_model) "
                        f'(increase({tokens}_sum{{{CALL}, gen_ai_token_type="{kind}"}}{RATE}))',
                        "{{gen_ai_request_model}}",
                    )
                ],
                "short",
                stacked=True,
                bars=True,
            ),
            8,
            8,
        )
    layout.add(
        table_panel(
            "Tokens in range",
            "Tokens over the dashboard's time range, by model and type.",
            Query(
                "sum by (gen_ai_request_model, gen_ai_token_type) "
                f"(increase({tokens}_sum{{{CALL}}}{RANGE}))",
                instant=True,
                fmt=pm.PromQueryFormat.TABLE,
            ),
        ),
        8,
        8,
    )

    # --- traces -----------------------------------------------------------------------------
    layout.row("Traces (Tempo)")
    service = 'resource.service.name =~ "${service:regex}"'
    layout.add(
        traces_panel(
            "Failed sessions",
            "l0.session spans that ended in error: open one for its attempts and their errors.",
            f'{{ {service} && name = "l0.session" && span.l0.outcome = "error" }} '
            "| select(span.error.type, span.l0.attempts, span.l0.fallback.index)",
        ),
        12,
        8,
    )
    layout.add(
        traces_panel(
            "Sessions that retried",
            "Traces with an l0.attempt numbered above 1.",
            f'{{ {service} && name = "l0.attempt" && span.l0.attempt.number > 1 }} '
            "| select(span.l0.attempt.number, span.l0.attempt.reason)",
        ),
        12,
        8,
    )
    layout.add(
        traces_panel(
            "Slow first chunk",
            f"chat calls whose first chunk took more than {SLOW_FIRST_CHUNK_SECONDS} s "
            "(gen_ai.response.time_to_first_chunk).",
            f"{{ {service} && kind = client && "
            f"span.gen_ai.response.time_to_first_chunk > {SLOW_FIRST_CHUNK_SECONDS} }} "
            "| select(span.gen_ai.request.model, span.gen_ai.response.time_to_first_chunk)",
        ),
        12,
        8,
    )
    layout.add(
        traces_panel(
            "Sessions that fell back",
            "l0.session spans that ended on a fallback target (l0.fallback.index > 0).",
            f'{{ {service} && name = "l0.session" && span.l0.fallback.index > 0 }} '
            "| select(span.l0.fallback.index, span.l0.outcome)",
        ),
        12,
        8,
    )

    dashboard = (
        db.Dashboard("l0 — LLM reliability")
        .uid("l0-llm-reliability")
        .description(
            "l0 sessions: are they healthy, and if not, which model or provider and why. "
            "Generated by dashboards/generate.py; see dashboards/README.md."
        )
        .tags(["l0", "llm", "opentelemetry", "gen_ai"])
        .editable()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
    )
    for variable in variables():
        dashboard.with_variable(variable)
    for panel in layout.panels:
        if isinstance(panel, db.Row):
            dashboard.with_row(panel)
        else:
            dashboard.with_panel(panel)
    return dashboard


DASHBOARDS = {"l0-llm-reliability.json": reliability_dashboard}


def render(build: Any) -> str:
    """The dashboard as committed: sorted keys, two-space indent, trailing newline."""
    model = json.loads(json.dumps(build().build(), cls=JSONEncoder))
    return json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def panel_table(model: dict[str, Any]) -> str:
    """A markdown table: which panel reads which metric (for ``docs/observability.md``)."""
    lines = [
        "| Row | Panel | Reads |",
        "| --- | --- | --- |",
    ]
    row = ""
    for panel in model["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
            continue
        reads: list[str] = []
        for target in panel.get("targets", []):
            if "expr" in target:
                for series in re.findall(r"\b([a-z_:][a-z0-9_:]*)\{", target["expr"]):
                    base = re.sub(r"_(bucket|sum|count)$", "", series)
                    otel = OTEL_NAMES.get(base) or OTEL_NAMES[series]
                    entry = f"`{otel}` (`{series}`)"
                    if entry not in reads:
                        reads.append(entry)
            else:
                spans = sorted(set(re.findall(r'name = "([^"]+)"', target["query"])))
                attributes = sorted(set(re.findall(r"span\.([\w.]+)", target["query"])))
                where = ", ".join(f"`{name}`" for name in spans) or "`chat` (kind client)"
                reads.append(f"Tempo: {where} spans; " + ", ".join(f"`{a}`" for a in attributes))
        lines.append(f"| {row} | {panel['title']} | {'; '.join(reads)} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    parser.add_argument(
        "--docs", action="store_true", help="print the panel → metric table for the docs"
    )
    args = parser.parse_args(argv)
    if args.docs:
        for build in DASHBOARDS.values():
            print(panel_table(json.loads(render(build))), end="")
        return 0
    stale = []
    for name, build in DASHBOARDS.items():
        path = HERE / name
        text = render(build)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(HERE.parent)}")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python dashboards/generate.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
