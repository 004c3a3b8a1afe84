"""The deployment files stay true to the code: every PACS_* they set is a real setting.

No Docker engine runs here, so these files are checked by reading: a renamed
setting would otherwise silently fall back to its default in production.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from pacs.settings import Settings

ROOT = Path(__file__).parents[1]


def _setting_names() -> set[str]:
    return {f"PACS_{name.upper()}" for name in Settings.model_fields}


def test_compose_sets_only_real_settings() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    nodes = [compose["services"][name] for name in ("pacs-a", "pacs-b")]
    for pacs in nodes:
        names = {name for name in pacs["environment"] if name.startswith("PACS_")}
        assert names and names <= _setting_names(), names - _setting_names()
        assert pacs["environment"]["PACS_STORAGE_URL"].startswith("s3://")
        assert pacs["environment"]["PACS_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert nodes[0]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert nodes[1]["depends_on"]["pacs-a"]["condition"] == "service_healthy"


def test_compose_scales_out_two_nodes_behind_nginx() -> None:
    """Two nodes share one database, one bucket and one signing key, each its own volume;
    nginx's configuration (read here: no Docker engine) balances HTTP over both."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    a, b = services["pacs-a"], services["pacs-b"]
    shared = ("PACS_DATABASE_URL", "PACS_STORAGE_URL", "PACS_S3_ENDPOINT", "PACS_SECRET_KEY")
    for name in shared:
        assert a["environment"][name] == b["environment"][name], name
    assert "PACS_SECRET_KEY:?" in a["environment"]["PACS_SECRET_KEY"]  # required, no default
    assert a["volumes"] != b["volumes"]
    assert {"postgres", "minio", "nginx"} <= set(services)
    nginx = services["nginx"]
    mounted = [v.split(":") for v in nginx["volumes"]]
    config = next(host for host, inside, *_ in mounted if inside == "/etc/nginx/nginx.conf")
    text = (ROOT / config).read_text()
    upstream = re.search(r"upstream pacs_http \{(.*?)\}", text, re.S)
    assert upstream is not None
    servers = re.findall(r"server (pacs-[ab]):(\d+)", upstream.group(1))
    assert sorted(servers) == [("pacs-a", "8080"), ("pacs-b", "8080")]
    assert "proxy_pass http://pacs_http;" in text
    assert "client_max_body_size 0;" in text  # STOW of whole studies
    assert "X-Forwarded-For" in text and "PACS_FORWARDED_ALLOW_IPS" in a["environment"]
    http = [p.split(":")[0] for p in nginx["ports"] if p.endswith(":8080")]
    assert http == ["127.0.0.1"]  # HTTP on loopback: TLS goes in front
    assert text.count("{") == text.count("}")


def test_dockerfile_runs_as_non_root_with_healthcheck_and_volume() -> None:
    text = (ROOT / "Dockerfile").read_text()
    env_names = set(re.findall(r"\b(PACS_[A-Z0-9_]+)=", text))
    assert env_names <= _setting_names(), env_names - _setting_names()
    assert re.search(r"^USER pacs$", text, re.M)
    assert "HEALTHCHECK" in text and "/health" in text
    assert 'VOLUME ["/data"]' in text
    assert text.count("FROM python:3.11-slim") == 2


@pytest.mark.slow
def test_wheel_carries_the_migrations(tmp_path: Path) -> None:
    """A non-editable install (the Docker image) must find Alembic's env.py and revisions."""
    # Build from a clean copy: a stale build/ folder in the work tree would hide a regression.
    source = tmp_path / "src"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "node_modules",
            "build",
            "data",
            "*.egg-info",
            "__pycache__",
            ".*_cache",
        ),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(source), "-w", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("pacs-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "pacs/index/migrations/env.py" in names
    assert "pacs/index/migrations/script.py.mako" in names
    revisions = {n for n in names if n.startswith("pacs/index/migrations/versions/")}
    shipped = {
        f"pacs/index/migrations/versions/{p.name}"
        for p in (ROOT / "pacs/index/migrations/versions").glob("*.py")
    }
    assert revisions == shipped


def test_compose_balances_dicom_through_nginx_with_the_proxy_protocol() -> None:
    """DICOM is balanced too (nginx stream, per association), and the nodes learn each
    modality's address from the PROXY line that nginx, at its fixed address, writes first."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    nginx = services["nginx"]
    text = (ROOT / "deploy/nginx.conf").read_text()
    stream = re.search(r"^stream \{(.*)^\}", text, re.S | re.M)
    assert stream is not None, "no stream block: DICOM would not be balanced"
    upstream = re.search(r"upstream (\w+) \{(.*?)\}", stream.group(1), re.S)
    assert upstream is not None
    servers = re.findall(r"server (pacs-[ab]):(\d+)", upstream.group(2))
    assert sorted(servers) == [("pacs-a", "11112"), ("pacs-b", "11112")]
    server = re.search(r"server \{(.*?)\}", stream.group(1)[upstream.end() :], re.S)
    assert server is not None
    directives = {line.strip().rstrip(";") for line in server.group(1).splitlines()}
    assert {"listen 11112", f"proxy_pass {upstream.group(1)}", "proxy_protocol on"} <= directives
    assert "11112:11112" in nginx["ports"]
    # Modalities reach the nodes only through nginx: no node publishes a DICOM port.
    assert "ports" not in services["pacs-a"] and "ports" not in services["pacs-b"]
    nginx_address = nginx["networks"]["pacs"]["ipv4_address"]
    subnet = compose["networks"]["pacs"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(nginx_address) in ipaddress.ip_network(subnet)
    for name in ("pacs-a", "pacs-b"):
        env = services[name]["environment"]
        assert yaml.safe_load(env["PACS_DICOM_PROXY_PROTOCOL_FROM"]) == [nginx_address]
        assert nginx_address in yaml.safe_load(env["PACS_FORWARDED_ALLOW_IPS"])
        assert services[name]["networks"] == ["pacs"]
    for name in ("postgres", "minio"):
        assert services[name]["networks"] == ["pacs"]
