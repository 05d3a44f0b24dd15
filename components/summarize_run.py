"""Component: the exit handler. Cleans up what a failed run left and writes a run summary."""

from kfp import dsl
from kfp.dsl import Markdown, Output, PipelineTaskFinalStatus

from mlworkloads.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def summarize_run(
    status: PipelineTaskFinalStatus,
    summary: Output[Markdown],
    service_name: str = "",
    namespace: str = "",
    webhook_url: str = "",
    run_id: str = dsl.PIPELINE_JOB_ID_PLACEHOLDER,
):
    """Runs when the pipeline ends, however it ends: cleans up, summarises, notifies.

    On a failed run it deletes any PyTorchJob the run left and takes traffic off an
    unpromoted canary of `service_name` (in a cluster). It never fails the run itself.

    Args:
        status: The pipeline's final status (filled in by KFP).
        service_name: InferenceService the run deploys, checked for a left-over canary.
        namespace: Namespace of the run's jobs and service; empty for the step's own.
        webhook_url: Optional URL that receives {"text": ..., "state": ..., "run_id": ...}.
        run_id: The pipeline run id (filled in by KFP).

    Returns:
        summary: Markdown run summary: final state, error, what was cleaned up, notification.
    """
    from mlworkloads.data.run_summary import notify, summary_markdown
    from mlworkloads.serving.cleanup import clean_up_serving
    from mlworkloads.training.cleanup import clean_up_training

    state = status.state or "UNKNOWN"
    cleaned = []
    if state != "SUCCEEDED":
        cleaned = clean_up_training(run_id, namespace) + clean_up_serving(service_name, namespace)
    text = summary_markdown(state, run_id, status.pipeline_task_name or "", status.error_message or "", cleaned)
    outcome = notify(
        webhook_url,
        {
            "text": f"mlworkloads run {run_id}: {state}",
            "state": state,
            "run_id": run_id,
            "error": status.error_message or "",
        },
    )
    with open(summary.path, "w", encoding="utf-8") as f:
        f.write(text + f"\nNotification: {outcome}\n")
