"""The Kubernetes manifests keep the timeout budget: drain before kill, no buffering, idle limits above heartbeats."""

from __future__ import annotations

import runpy
from typing import Any

import yaml

from tests.support.servers import ROOT
from webapp.config import load_settings

K8S = ROOT / "conf" / "k8s"


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((K8S / name).read_text())


def container() -> dict[str, Any]:
    return load("deployment.yaml")["spec"]["template"]["spec"]["containers"][0]


def env() -> dict[str, str]:
    return {item["name"]: item["value"] for item in container()["env"] if "value" in item}


def test_termination_grace_covers_the_prestop_delay_and_gunicorns_drain() -> None:
    gunicorn = runpy.run_path(str(ROOT / "conf" / "gunicorn.conf.py"))
    spec = load("deployment.yaml")["spec"]["template"]["spec"]
    pre_stop = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert spec["terminationGracePeriodSeconds"] > int(pre_stop[1]) + gunicorn["graceful_timeout"]
    assert float(env()["WEBAPP_MAX_STREAM_SECONDS"]) <= gunicorn["graceful_timeout"]


def test_probes_use_healthz_and_the_container_runs_the_shipped_gunicorn_config() -> None:
    c = container()
    assert c["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["command"][:3] == ["gunicorn", "-c", "conf/gunicorn.conf.py"]


def test_ingress_streams_unbuffered_with_idle_limits_above_the_heartbeat() -> None:
    annotations = load("ingress.yaml")["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    heartbeat = load_settings(env()).heartbeat_seconds
    assert annotations[prefix + "proxy-buffering"] == "off"
    assert annotations[prefix + "proxy-http-version"] == "1.1"
    assert int(annotations[prefix + "proxy-read-timeout"]) > heartbeat
    assert int(annotations[prefix + "proxy-send-timeout"]) > heartbeat


def test_the_service_selects_the_deployments_pods() -> None:
    labels = load("deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    assert load("service.yaml")["spec"]["selector"].items() <= labels.items()
    backend = load("ingress.yaml")["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == load("service.yaml")["metadata"]["name"]
