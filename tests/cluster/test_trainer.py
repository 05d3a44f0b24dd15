"""Kubeflow Trainer v2.3 and JobSet on the REAL test cluster, as their releases install them.

A TrainJob on the `torch-distributed` ClusterTrainingRuntime goes the whole way a cluster takes it:
Trainer's webhook admits it, its controller writes a JobSet, JobSet's controller writes the Jobs
and the headless Service, the Job controller makes the pods, the scheduler binds them and the pod
runner runs them: two nodes of `torchrun` (the runtime's image is this virtualenv here) that find
each other by the rendezvous address Trainer gives them and all-reduce over gloo.
"""

from __future__ import annotations

import json

from mlworkloads.images import TRAINER_IMAGE

ALLREDUCE = (
    "import torch, torch.distributed as dist; dist.init_process_group('gloo'); "
    "t = torch.ones(1) * (dist.get_rank() + 1); dist.all_reduce(t); "
    "print(f'rank {dist.get_rank()} of {dist.get_world_size()}: sum {t.item():g}', flush=True); "
    "dist.destroy_process_group()"
)


def trainjob(namespace: str, name: str, **trainer) -> dict:
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"runtimeRef": {"name": "torch-distributed"}, "trainer": trainer},
    }


def test_a_trainjob_runs_two_torch_nodes_that_all_reduce(kube_cluster, cluster_namespace):
    job = trainjob(
        cluster_namespace, "allreduce", image=TRAINER_IMAGE, numNodes=2, numProcPerNode=1,
        command=["torchrun", "--no-python", "python", "-c", ALLREDUCE],
        resourcesPerNode={"requests": {"cpu": "500m", "memory": "1Gi"}},
    )  # fmt: skip
    kube_cluster.kubectl("create", "-f", "-", input=json.dumps(job))
    kube_cluster.wait_for(cluster_namespace, "trainjob/allreduce", "condition=Complete", timeout=240)
    (jobset,) = kube_cluster.objects("jobsets", cluster_namespace)
    assert jobset["metadata"]["ownerReferences"][0]["kind"] == "TrainJob"
    pods = kube_cluster.objects("pods", cluster_namespace)
    assert len(pods) == 2 and all(p["status"]["phase"] == "Succeeded" for p in pods)
    env = {e["name"]: e.get("value") for e in pods[0]["spec"]["containers"][0]["env"]}
    assert env["PET_NNODES"] == "2" and env["PET_NPROC_PER_NODE"] == "1"
    logs = sorted(
        kube_cluster.kubectl("-n", cluster_namespace, "logs", p["metadata"]["name"]).stdout.strip().splitlines()[-1]
        for p in pods
    )
    assert logs == ["rank 0 of 2: sum 3", "rank 1 of 2: sum 3"]


def test_a_trainjob_written_as_before_trainer_2_2_is_refused(kube_cluster, cluster_namespace):
    """`podSpecOverrides` was removed in Trainer v2.2 (`runtimePatches` replaced it)."""
    job = trainjob(cluster_namespace, "old-shape", image=TRAINER_IMAGE, numNodes=1)
    job["spec"]["podSpecOverrides"] = [{"targetJobs": [{"name": "node"}], "nodeSelector": {"pool": "gpu"}}]
    done = kube_cluster.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(job), check=False)
    assert done.returncode != 0 and 'unknown field "spec.podSpecOverrides"' in done.stderr, done.stderr


def test_a_trainjob_on_a_runtime_that_does_not_exist_is_refused_by_trainers_webhook(kube_cluster, cluster_namespace):
    job = trainjob(cluster_namespace, "no-runtime", image=TRAINER_IMAGE, numNodes=1)
    job["spec"]["runtimeRef"]["name"] = "no-such-runtime"
    done = kube_cluster.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(job), check=False)
    assert done.returncode != 0 and "validator.trainjob.trainer.kubeflow.org" in done.stderr, done.stderr
