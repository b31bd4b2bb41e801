"""The provider is discoverable by Airflow through its entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

from airflow_provider_confiture import __version__


def _entry_point():
    eps = [
        ep
        for ep in distribution("airflow-provider-confiture").entry_points
        if ep.group == "apache_airflow_provider"
    ]
    assert len(eps) == 1, eps
    return eps[0]


def test_entry_point_resolves_to_get_provider_info():
    ep = _entry_point()
    assert ep.value == "airflow_provider_confiture.get_provider_info:get_provider_info"
    from airflow_provider_confiture.get_provider_info import get_provider_info

    assert ep.load() is get_provider_info


def test_provider_info_dict():
    info = _entry_point().load()()
    assert info["package-name"] == "airflow-provider-confiture"
    assert info["name"]
    assert info["description"]
    assert info["versions"][0] == __version__


def test_airflow_providers_list_shows_provider():
    airflow = Path(sys.executable).parent / "airflow"
    cmd = [str(airflow)] if airflow.exists() else [sys.executable, "-m", "airflow"]
    res = subprocess.run(
        [*cmd, "providers", "list", "--output", "plain"],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    lines = [line for line in res.stdout.splitlines() if "airflow-provider-confiture" in line]
    assert lines, res.stdout[-3000:]
    assert __version__ in lines[0]


def test_provider_info_lists_every_operator_module_and_only_those():
    from airflow_provider_confiture import operators
    from airflow_provider_confiture.get_provider_info import get_provider_info

    listed = {m for group in get_provider_info()["operators"] for m in group["python-modules"]}
    exported = {getattr(operators, name).__module__ for name in operators.__all__}
    assert listed == exported, "every operator module is listed, and every listed module exports operators"
