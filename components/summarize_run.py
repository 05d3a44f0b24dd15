"""Component: the exit handler. Cleans up what a failed run left and writes a run summary."""

from kfp import dsl
from kfp.dsl import Markdown, Output, PipelineTaskFinalStatus

from mlworkloads.components._spec import with_step_resources
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
        run_id: The pipeline run id: pass `dsl.PIPELINE_JOB_ID_PLACEHOLDER` (KFP's backend fills
            placeholders in task arguments only). Left as the default, the step reads the run
            from its pod's `pipeline/runid` label, and cleans nothing up if it cannot.

    Returns:
        summary: Markdown run summary: final state, error, what was cleaned up, notification.
    """
    from mlworkloads.serving.exit_handler import summarize_step

    summarize_step(
        state=status.state or "UNKNOWN",
        run_id=run_id,
        pipeline_task=status.pipeline_task_name or "",
        error=status.error_message or "",
        service_name=service_name,
        namespace=namespace,
        webhook_url=webhook_url,
        summary_path=summary.path,
    )


with_step_resources(summarize_run, "tiny")
