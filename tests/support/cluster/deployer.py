"""The deploy step as a pipeline runs it: in a pod of the test cluster, as `pipeline-runner`.

`Deployer.deploy` writes the step's input artifacts, runs `deploy_step` (what the
`deploy_inferenceservice` component calls; `Deployer.deploy_model` runs `deploy_model_step`, what
`deploy_model` calls) in a pod of our component image under the service account that holds
exactly the shipped Roles, and reads back its phase, log and output artifacts.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import urllib.parse
import uuid

import httpx
import pyarrow.parquet as pq

from mlworkloads.images import PREDICTOR_IMAGE
from mlworkloads.training.evaluation import evaluate
from mlworkloads.training.export import load

RUNNER = "pipeline-runner"
STEP = (
    "import json, sys; from mlworkloads.serving import deploy_step; "
    "print('endpoint:', getattr(deploy_step, sys.argv[1])(**json.loads(sys.argv[2])))"
)


def expected_predictions(model_dir, rows):
    return evaluate(load(model_dir), rows).predictions


@dataclasses.dataclass
class Deployed:
    phase: str
    log: str
    manifest: dict
    status: dict


@dataclasses.dataclass
class Deployer:
    """The deploy step's namespace and identity on the cluster, and where its artifacts go."""

    cluster: object
    namespace: str
    workdir: pathlib.Path

    def deploy(self, model_dir, rows, expected=None, *, name="flights", ready_timeout=120, **settings) -> Deployed:
        step = self.workdir / f"deploy-{uuid.uuid4().hex[:6]}"
        step.mkdir()
        pq.write_table(rows, step / "test.parquet")
        pq.write_table(
            expected if expected is not None else expected_predictions(model_dir, rows), step / "pred.parquet"
        )
        arguments = {
            "model_path": model_dir,
            "model_uri": settings.pop("model_uri", model_dir),
            "test_path": str(step / "test.parquet"),
            "predictions_path": str(step / "pred.parquet"),
        }
        settings = {"name": name, "image": PREDICTOR_IMAGE, **settings}
        return self._run("deploy_step", step, arguments, settings, ready_timeout)

    def deploy_model(
        self, model_uri, examples, *, name="any-model", protocol="v1", ready_timeout=120, **settings
    ) -> Deployed:
        """Runs `deploy_model_step` (what `deploy_model` calls) in a pod, Standard mode unless told."""
        step = self.workdir / f"deploy-{uuid.uuid4().hex[:6]}"
        step.mkdir()
        arguments = {
            "model_uri": model_uri,
            "examples": examples,
            "protocol": protocol,
        }
        settings = {"name": name, "image": "", **settings}
        return self._run("deploy_model_step", step, arguments, settings, ready_timeout)

    def _run(self, function: str, step: pathlib.Path, arguments: dict, settings: dict, ready_timeout: int) -> Deployed:
        """Runs `deploy_step.<function>` in a pod with what both steps share: Standard mode and a
        20% canary unless `settings` say otherwise, this namespace, run-7, short polls."""
        arguments = {
            **arguments,
            "settings": {"namespace": self.namespace, "deployment_mode": "Standard", "canary_traffic_percent": 20}
            | settings,
            "backend": "kserve",
            "run_id": "run-7",
            "manifest_path": str(step / "manifest.json"),
            "status_path": str(step / "status.json"),
            "ready_timeout_seconds": ready_timeout,
            "poll_interval_seconds": 1,
        }
        phase, log = self.cluster.run_pod(
            self.namespace,
            step.name,
            ["python", "-c", STEP, function, json.dumps(arguments)],
            service_account=RUNNER,
            timeout=ready_timeout * 3 + 120,
        )
        read = lambda path: json.loads(path.read_text()) if path.exists() else {}  # noqa: E731
        return Deployed(phase, log, read(step / "manifest.json"), read(step / "status.json"))

    def service(self, name="flights") -> dict:
        return json.loads(
            self.cluster.kubectl("-n", self.namespace, "get", "inferenceservice", name, "-o", "json").stdout
        )

    def client(self, name="flights") -> httpx.Client:
        """A client of the InferenceService as its users reach it: its URL's host, through the
        Ingress KServe keeps pointed at the current predictor (support/cluster/ingress.py)."""
        host = urllib.parse.urlparse(self.service(name)["status"]["url"]).hostname
        return httpx.Client(base_url=self.cluster.ingress.address, headers={"Host": host}, timeout=30)

    def calls(self):
        return self.cluster.api_calls(self.namespace, RUNNER)
