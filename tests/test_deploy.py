"""Deployment files: the dashboard asks only for metrics the service exports, the compose file
wires the service, the simulator, Prometheus and Grafana together, and the Dockerfile runs
unprivileged with the key mounted, not baked in. (Docker itself cannot run in CI here: these
check the files; `docker compose up` is the manual check.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from quoter.observability.metrics import Metrics

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "quoter.json"
_METRIC = re.compile(r"\bquoter_[a-z0-9_]+")


def _exported() -> set[str]:
    """Every series name the service can export (histograms with their suffixes)."""
    names: set[str] = set()
    for line in Metrics().render().decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            if kind == "counter":
                names.add(f"{name}_total" if not name.endswith("_total") else name)
    return names


def test_every_dashboard_panel_queries_only_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exported = _exported()
    assert len(dashboard["panels"]) >= 8
    used: set[str] = set()
    for panel in dashboard["panels"]:
        exprs = [t["expr"] for t in panel["targets"]]
        assert exprs, panel["title"]
        names = {m for e in exprs for m in _METRIC.findall(e)}
        assert names, f"panel {panel['title']!r} queries no quoter metric"
        unknown = names - exported
        assert unknown == set(), f"panel {panel['title']!r}: {sorted(unknown)}"
        used |= names
    # What the issue asks the dashboard to show is there.
    for needed in ("quoter_accept_to_confirm_sent_seconds_bucket", "quoter_rfq_decisions_total",
                   "quoter_positions", "quoter_exposure_worst_case_dollars",
                   "quoter_pnl_marked_dollars", "quoter_rate_bucket_tokens",
                   "quoter_reconnects_total"):
        assert needed in used, needed


def test_the_checker_would_catch_a_renamed_metric() -> None:
    assert "quoter_rfq_decisions_total" in _exported()
    assert "rfq_decisions_total" not in _exported()
    assert "quoter_no_such_metric" not in _exported()


def test_compose_wires_service_simulator_prometheus_and_grafana() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert {"sim", "quoter", "prometheus", "grafana"} <= set(services)
    quoter = services["quoter"]
    assert quoter["network_mode"] == "service:sim"  # the simulator serves loopback only
    assert quoter["depends_on"]["sim"]["condition"] == "service_healthy"
    assert "/shared/sim.env" in " ".join(services["sim"]["command"])
    assert "/shared/sim.env" in " ".join(quoter["command"])
    # Prometheus scrapes the metrics port the image exposes, on the namespace quoter joined.
    prom = yaml.safe_load((DEPLOY / "prometheus.yml").read_text(encoding="utf-8"))
    [job] = prom["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["sim:9108"]
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert "QUOTER_METRICS_PORT=9108" in dockerfile
    assert "QUOTER_METRICS_HOST=0.0.0.0" in dockerfile
    # Grafana gets the datasource and the dashboard by provisioning.
    mounts = " ".join(services["grafana"]["volumes"])
    assert "./grafana/dashboards" in mounts
    assert "./grafana/provisioning" in mounts
    # Published ports stay on the host's loopback.
    for svc in services.values():
        for port in svc.get("ports", ()):
            assert port.startswith("127.0.0.1:"), port
    # The Kalshi profile mounts the key read-only.
    assert any(v.endswith(":/run/secrets/kalshi-key.pem:ro")
               for v in services["quoter-kalshi"]["volumes"])


def test_dockerfile_runs_unprivileged_with_a_state_volume_and_no_key() -> None:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    instructions = [line.split(None, 1) for line in text.splitlines()
                    if line and not line.startswith((" ", "#"))]
    users = [rest for op, *rest in instructions if op == "USER"]
    assert users
    assert users[-1][0].split(":")[0] not in ("root", "0")
    assert any(op == "VOLUME" and "/var/lib/quoter" in rest[0] for op, *rest in instructions)
    assert "requirements.lock" in text  # reproducible: the pinned versions
    assert not re.search(r"COPY .*\.pem", text)  # the key is mounted at run time
    assert "HEALTHCHECK" in text


def test_systemd_unit_restarts_on_failure_and_stops_in_order() -> None:
    unit = (DEPLOY / "systemd" / "quoter.service").read_text(encoding="utf-8")
    sections: dict[str, dict[str, str]] = {}
    current = ""
    for line in unit.splitlines():
        if line.startswith("["):
            current = line.strip("[]")
            sections[current] = {}
        elif "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            sections[current].setdefault(key, value)
    service = sections["Service"]
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    assert service["User"] == "quoter"
    assert "--view none" in service["ExecStart"]
    assert service["ExecReload"].endswith("-HUP $MAINPID")
    assert sections["Install"]["WantedBy"] == "multi-user.target"
    assert "StartLimitBurst" in sections["Unit"]
