"""The Collector configuration and the compose stack in ``collector/``, checked structurally.

Docker does not run in l0's CI and no ``otelcol-contrib`` binary is available, so this test
does what the Collector would do at start-up that can go wrong silently: every pipeline names
only defined components, every component type exists in the pinned ``otelcol-contrib`` release,
message content is redacted (the attribute names come from ``l0.observability.semconv``), and
the tail-sampling policies keep what the dashboards and alerts look for. The compose stack is
checked for pinned images, mounted files that exist, and endpoints that agree.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from l0.observability import semconv

ROOT = Path(__file__).resolve().parents[2]
COLLECTOR = ROOT / "collector"
CONFIG = COLLECTOR / "otelcol-config.yaml"
ALLOW_CONTENT = COLLECTOR / "allow-message-content.yaml"
COMPOSE = COLLECTOR / "compose.yaml"

OTELCOL_CONTRIB_VERSION = "0.136.0"
"""The release the configuration is written for (and the compose image's tag)."""


def _types(names: str) -> frozenset[str]:
    return frozenset(names.split())


# Component *types* (the part of a component id before "/") in otelcol-contrib 0.136.0, from
# the distribution's manifest (opentelemetry-collector-releases,
# distributions/otelcol-contrib/manifest.yaml at v0.136.0). Receivers and extensions: the ones
# an l0 pipeline might use; processors, exporters and connectors: all of them.
COMPONENTS: dict[str, frozenset[str]] = {
    "receivers": _types(
        """otlp nop prometheus prometheusremotewrite jaeger zipkin hostmetrics filelog kafka
        journald k8s_cluster k8s_events kubeletstats docker_stats statsd syslog fluentforward
        httpcheck otlpjsonfile"""
    ),
    "processors": _types(
        """batch memory_limiter attributes cumulativetodelta coralogix deltatocumulative
        deltatorate filter geoip groupbyattrs groupbytrace interval isolationforest
        k8sattributes logdedup experimental_metricsgeneration metricstarttime
        metricstransform probabilistic_sampler redaction remotetap resourcedetection resource
        schema span sumologic tail_sampling transform"""
    ),
    "exporters": _types(
        """debug nop otlp otlphttp alibabacloud_logservice awscloudwatchlogs awsemf awskinesis
        awsxray awss3 azureblob azuredataexplorer azuremonitor bmchelix carbon cassandra
        clickhouse coralogix datadog dataset doris elasticsearch faro file googlecloud
        googlecloudpubsub googlemanagedprometheus honeycombmarker influxdb kafka loadbalancing
        logicmonitor logzio mezmo opensearch otelarrow prometheus prometheusremotewrite pulsar
        rabbitmq sapm sentry signalfx splunk_hec stef sumologic syslog tencentcloud_logservice
        tinybird zipkin"""
    ),
    "connectors": _types(
        """forward count datadog exceptions failover grafanacloud otlpjson roundrobin routing
        servicegraph spanmetrics sum signaltometrics"""
    ),
    "extensions": _types(
        """zpages health_check pprof basicauth bearertokenauth headers_setter oauth2client
        oidc file_storage opamp sigv4auth"""
    ),
}
SIGNALS = {"traces", "metrics", "logs"}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def merge(base: Any, overlay: Any) -> Any:
    """The Collector's merge of several ``--config`` files: maps merge, the rest is replaced."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = dict(base)
        for key, value in overlay.items():
            merged[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    return copy.deepcopy(overlay)


def kind(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def content_attributes() -> set[str]:
    """Every attribute l0 can put message content in, from l0's semconv module."""
    declared = getattr(semconv, "CONTENT_ATTRIBUTES", None)
    found = set(declared) if declared else set()
    found |= {
        semconv.GEN_AI_INPUT_MESSAGES,
        semconv.GEN_AI_OUTPUT_MESSAGES,
        semconv.GEN_AI_SYSTEM_INSTRUCTIONS,
    }
    # Any later addition spelled like content (tool call arguments/results, prompts…).
    found |= {
        value
        for name, value in vars(semconv).items()
        if name.isupper()
        and isinstance(value, str)
        and re.search(r"(messages|instructions|prompt|completion|content|arguments|result)$", value)
        and value.startswith("gen_ai.")
        and "guardrail" not in value
    }
    return found


def l0_attributes() -> set[str]:
    return {
        value
        for name, value in vars(semconv).items()
        if name.isupper()
        and isinstance(value, str)
        and "." in value
        and not name.startswith(("METRIC_", "SPAN_", "EVENT_", "OPT_IN", "LATEST"))
    }


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    loaded: dict[str, Any] = load(CONFIG)
    return loaded


def test_config_names_its_pinned_release(config: dict[str, Any]) -> None:
    assert f"otelcol-contrib {OTELCOL_CONTRIB_VERSION}" in CONFIG.read_text(encoding="utf-8")


def test_every_component_type_exists_in_the_pinned_release(config: dict[str, Any]) -> None:
    for section, known in COMPONENTS.items():
        for component_id in config.get(section) or {}:
            assert kind(component_id) in known, (
                f"{section}.{component_id}: no {kind(component_id)!r} in otelcol-contrib "
                f"{OTELCOL_CONTRIB_VERSION}"
            )


def test_pipelines_name_only_defined_components(config: dict[str, Any]) -> None:
    service = config["service"]
    defined = {section: set(config.get(section) or {}) for section in COMPONENTS}
    connectors = defined["connectors"]
    used: set[str] = set()
    pipelines = service["pipelines"]
    assert {kind(p) for p in pipelines} <= SIGNALS
    for name, pipeline in pipelines.items():
        assert pipeline.get("receivers") and pipeline.get("exporters"), name
        for receiver in pipeline["receivers"]:
            assert receiver in defined["receivers"] | connectors, f"{name}: {receiver}"
        for processor in pipeline.get("processors", []):
            assert processor in defined["processors"], f"{name}: {processor}"
        for exporter in pipeline["exporters"]:
            assert exporter in defined["exporters"] | connectors, f"{name}: {exporter}"
        used |= set(pipeline["receivers"]) | set(pipeline.get("processors", []))
        used |= set(pipeline["exporters"])
    for extension in service.get("extensions", []):
        assert extension in defined["extensions"], extension
    used |= set(service.get("extensions", []))
    # A connector must be both an exporter and a receiver; nothing is defined and unused.
    for connector in connectors:
        as_exporter = any(connector in p["exporters"] for p in pipelines.values())
        as_receiver = any(connector in p["receivers"] for p in pipelines.values())
        assert as_exporter and as_receiver, connector
    unused = set().union(*defined.values()) - used
    assert not unused, f"defined but unused: {sorted(unused)}"


def test_pipeline_order_and_signals(config: dict[str, Any]) -> None:
    pipelines = config["service"]["pipelines"]
    assert {kind(p) for p in pipelines} == SIGNALS
    for name, pipeline in pipelines.items():
        processors = pipeline.get("processors", [])
        assert processors[0] == "memory_limiter", name
        assert kind(processors[-1]) == "batch", name
        assert pipeline["receivers"] == ["otlp"], name
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith(":4317")
    assert protocols["http"]["endpoint"].endswith(":4318")


def _redaction(config: dict[str, Any], pipeline: dict[str, Any]) -> dict[str, Any]:
    found = [p for p in pipeline.get("processors", []) if kind(p) == "redaction"]
    assert len(found) == 1
    processor: dict[str, Any] = config["processors"][found[0]]
    return processor


def _masked(processor: dict[str, Any], key: str) -> bool:
    if key in (processor.get("ignored_keys") or []):
        return False
    if not processor.get("allow_all_keys") and key not in (processor.get("allowed_keys") or []):
        return True  # deleted
    # The Collector's Go regexps match anywhere, like re.search; these use no RE2-only syntax.
    return any(re.search(pattern, key) for pattern in processor.get("blocked_key_patterns", []))


def test_message_content_is_redacted_in_every_pipeline_that_can_carry_it(
    config: dict[str, Any],
) -> None:
    content = content_attributes()
    assert len(content) >= 3
    for name, pipeline in config["service"]["pipelines"].items():
        if kind(name) == "metrics":
            continue  # metric attributes pass l0's allow-list: never content
        processor = _redaction(config, pipeline)
        for key in sorted(content):
            assert _masked(processor, key), f"{name}: {key} reaches the exporters"
        # Only content: every other l0 attribute (the dashboards' TraceQL, the sampling
        # policies) passes untouched.
        for key in sorted(l0_attributes() - content):
            assert not _masked(processor, key), f"{name}: {key} is redacted"
        assert processor.get("allow_all_keys") is True, name


def test_content_is_kept_only_with_the_explicit_overlay(config: dict[str, Any]) -> None:
    allowed = merge(config, load(ALLOW_CONTENT))
    for name, pipeline in allowed["service"]["pipelines"].items():
        if kind(name) == "metrics":
            continue
        processor = _redaction(allowed, pipeline)
        for key in content_attributes():
            assert not _masked(processor, key), f"{name}: {key} still masked with the overlay"
        # Credentials stay masked.
        assert processor.get("blocked_values")
        assert re.search(processor["blocked_values"][1], "key sk-" + "a" * 24)


def test_tail_sampling_keeps_errors_retries_fallbacks_violations_and_slow_first_chunks(
    config: dict[str, Any],
) -> None:
    pipeline = config["service"]["pipelines"]["traces"]
    processors = pipeline["processors"]
    assert processors.index("tail_sampling") > processors.index("redaction/message-content")
    policies = config["processors"]["tail_sampling"]["policies"]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for policy in policies:
        by_type.setdefault(policy["type"], []).append(policy)
    assert by_type["status_code"][0]["status_code"]["status_codes"] == ["ERROR"]
    numeric = {
        p["numeric_attribute"]["key"]: p["numeric_attribute"] for p in by_type["numeric_attribute"]
    }
    assert numeric[semconv.L0_ATTEMPT_NUMBER]["min_value"] == 2
    assert numeric[semconv.L0_FALLBACK_INDEX]["min_value"] == 1
    assert numeric[semconv.L0_GUARDRAIL_VIOLATIONS]["min_value"] == 1
    for spec in numeric.values():
        assert spec["max_value"] > spec["min_value"]
    (slow,) = by_type["ottl_condition"]
    (condition,) = slow["ottl_condition"]["span"]
    match = re.fullmatch(r'attributes\["([\w.]+)"\] > ([\d.]+)', condition)
    assert match, condition
    assert match.group(1) == semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK
    alerts = load(ROOT / "dashboards" / "alerts.yaml")
    (ttfc_alert,) = [
        rule
        for group in alerts["groups"]
        for rule in group["rules"]
        if rule["alert"] == "L0TimeToFirstChunkSlow"
    ]
    assert float(match.group(2)) == float(ttfc_alert["expr"].rsplit(">", 1)[1])
    assert 0 < by_type["probabilistic"][0]["probabilistic"]["sampling_percentage"] < 100
    # Every attribute a policy reads is one l0 emits.
    assert set(numeric) <= l0_attributes()


def test_exporters_give_the_dashboards_their_names(config: dict[str, Any]) -> None:
    exporters = config["exporters"]
    remote_write = exporters["prometheusremotewrite"]
    assert remote_write.get("add_metric_suffixes", True) is True
    assert not remote_write.get("resource_to_telemetry_conversion", {}).get("enabled", False)
    assert "/api/v1/write" in remote_write["endpoint"]
    assert kind(next(iter(config["service"]["pipelines"]["traces"]["exporters"]))) in {
        "otlp",
        "otlphttp",
    }


# --- the compose stack ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = load(COMPOSE)
    return loaded


def _env_default(value: str) -> str:
    match = re.fullmatch(r"\$\{env:\w+:-(.+)\}", value)
    assert match, value
    return match.group(1)


def test_compose_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest" and re.search(r"\d", tag), (name, image)
    collector = compose["services"]["otel-collector"]["image"]
    assert collector == f"otel/opentelemetry-collector-contrib:{OTELCOL_CONTRIB_VERSION}"


def test_compose_mounts_exist_and_endpoints_agree(
    compose: dict[str, Any], config: dict[str, Any]
) -> None:
    services = compose["services"]
    mounts: dict[str, dict[str, str]] = {}
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                assert (COLLECTOR / source).exists(), f"{name}: {source} does not exist"
            mounts.setdefault(name, {})[target] = source
    # The collector runs this folder's config and publishes OTLP.
    collector = services["otel-collector"]
    assert mounts["otel-collector"]["/etc/otelcol-contrib/config.yaml"] == "./otelcol-config.yaml"
    assert "--config=/etc/otelcol-contrib/config.yaml" in collector["command"]
    published = {port.split(":")[0] for port in collector["ports"]}
    assert {"4317", "4318"} <= published
    # Its exporters reach the compose services (the defaults and the compose environment).
    tempo_endpoint = config["exporters"]["otlp/tempo"]["endpoint"]
    write_endpoint = config["exporters"]["prometheusremotewrite"]["endpoint"]
    for endpoint, variable in (
        (tempo_endpoint, "TEMPO_OTLP_ENDPOINT"),
        (write_endpoint, "PROMETHEUS_REMOTE_WRITE_ENDPOINT"),
    ):
        assert _env_default(endpoint) == collector["environment"][variable]
    assert _env_default(tempo_endpoint) == "tempo:4317"
    tempo_config = load(COLLECTOR / "tempo.yaml")
    grpc = tempo_config["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert grpc.endswith(":4317")
    assert _env_default(write_endpoint) == "http://prometheus:9090/api/v1/write"
    prometheus = services["prometheus"]
    assert "--web.enable-remote-write-receiver" in prometheus["command"]
    assert "--enable-feature=exemplar-storage" in prometheus["command"]
    assert mounts["prometheus"]["/etc/prometheus/alerts.yaml"] == "../dashboards/alerts.yaml"
    prometheus_config = load(COLLECTOR / "prometheus.yml")
    assert "/etc/prometheus/alerts.yaml" in prometheus_config["rule_files"]
    # Grafana: the provisioned dashboards folder is the mounted dashboards/.
    grafana = mounts["grafana"]
    assert grafana["/etc/grafana/provisioning"] == "./grafana/provisioning"
    provider = load(COLLECTOR / "grafana/provisioning/dashboards/l0.yaml")["providers"][0]
    assert grafana[provider["options"]["path"]] == "../dashboards"
    assert list((COLLECTOR / "../dashboards").glob("*.json"))
    datasources = load(COLLECTOR / "grafana/provisioning/datasources/l0.yaml")["datasources"]
    by_type = {d["type"]: d for d in datasources}
    assert by_type["prometheus"]["url"] == "http://prometheus:9090"
    assert by_type["tempo"]["url"] == f"http://tempo:{tempo_config['server']['http_listen_port']}"
    assert by_type["prometheus"]["isDefault"] is True
    destinations = by_type["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert destinations[0]["datasourceUid"] == by_type["tempo"]["uid"]
    # Every service a depends_on names exists.
    for name, service in services.items():
        for dependency in service.get("depends_on", []):
            assert dependency in services, (name, dependency)


def test_compose_prometheus_config_is_valid(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if shutil.which("apt-get") and os.environ.get("L0_ALLOW_MISSING_PROMETHEUS") != "1":
            pytest.fail("promtool is not installed: run scripts/ensure-prometheus.sh")
        pytest.skip("promtool is not installed and apt is unavailable here")
    text = (COLLECTOR / "prometheus.yml").read_text(encoding="utf-8")
    alerts = ROOT / "dashboards" / "alerts.yaml"
    config = tmp_path / "prometheus.yml"
    config.write_text(text.replace("/etc/prometheus/alerts.yaml", str(alerts)), encoding="utf-8")
    checked = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
