"""Component: KServe's logged predictions as a Dataset, with a drift report against the training split."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Output

from mlworkloads.components._spec import with_step_resources
from mlworkloads.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def prediction_logs(
    logs_uri: str,
    dataset: Output[Dataset],
    report: Output[Markdown],
    reference: Optional[Input[Dataset]] = None,
):
    """Reads what KServe's logger agent logged for an InferenceService into one table, so that the
    next retraining can look at what the model saw.

    The logs are KServe's stored records (the agent writing JSON to object storage: a logger URL
    of s3://...) or CloudEvents in the structured JSON format that a sink wrote, one per line; each
    request's rows are joined with its response's predictions by event id.

    Args:
        logs_uri: A file, or a directory or object-store prefix of `*.json` / `*.jsonl` files.
        reference: The training split (`split_dataset`'s train output): the report then compares
            each feature's live distribution with it (population stability index per feature).

    Returns:
        dataset: One row per instance: `event_id`, `event_time`, `event_row`, the features as sent,
            `predicted_class` and `probability_<class>` (or `prediction`), empty when the response
            was not logged.
        report: Markdown: the columns, what was read (requests, responses, unpaired events) and,
            with a reference, the drift per feature, the most shifted first.
    """
    from mlworkloads.data.steps import prediction_logs_step

    dataset.metadata.update(
        prediction_logs_step(logs_uri, dataset.path, report.path, reference.path if reference is not None else "")
    )


with_step_resources(prediction_logs, "table")
