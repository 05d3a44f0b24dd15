"""A REAL Prometheus for the tests, built from its upstream module at the pin in
support/cluster/versions.toml (build.py), scraping given targets every second and evaluating the
shipped rules (serving/prometheus-rules.yaml) every second."""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import Iterator

import httpx
import yaml

from support.servers import server_process


class Prometheus:
    def __init__(self, url: str):
        self.url = url

    def query(self, expr: str) -> list[dict]:
        """An instant query's result vector; raises when Prometheus refuses the expression."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise AssertionError(f"Prometheus refused {expr!r}: {body.get('error', response.text)}")
        return body["data"]["result"]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def rules(self) -> list[dict]:
        groups = httpx.get(f"{self.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
        return [rule for group in groups for rule in group["rules"]]


@contextlib.contextmanager
def prometheus(
    binary: pathlib.Path, directory: pathlib.Path, port: int, targets: list[str], rules: pathlib.Path
) -> Iterator[Prometheus]:
    """Runs Prometheus on 127.0.0.1:`port` until the block exits."""
    directory.mkdir(parents=True, exist_ok=True)
    shipped = yaml.safe_load(rules.read_text())
    for group in shipped["groups"]:
        group["interval"] = "1s"  # the test cannot wait the shipped 30 s per evaluation
    (directory / "rules.yaml").write_text(yaml.safe_dump(shipped))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(directory / "rules.yaml")],
        "scrape_configs": [{"job_name": "predictor", "static_configs": [{"targets": targets}]}],
    }
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    command = [
        str(binary),
        f"--config.file={directory / 'prometheus.yml'}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    url = f"http://127.0.0.1:{port}"
    with server_process(command, directory / "prometheus.log", f"{url}/-/ready", "prometheus", 60):
        yield Prometheus(url)
