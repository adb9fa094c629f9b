"""Each valid entry as Hub eval results: ``export/<task>/<name>/.eval_results/<task>.yaml`` and ``model-index.yaml``.

The figures exported are the board's recomputed ones, never the declared ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..ownership import mark, remove_owned
from .ranking import Board, Entry
from .render import threshold_text


def eval_results(e: Entry, namespace: str = "defectbench") -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A result as ``.eval_results/<task>.yaml`` entries (the primary metric) and as model-index (every metric)."""
    from huggingface_hub import EvalResult, EvalResultEntry, eval_result_entries_to_yaml
    from huggingface_hub.repocard_data import eval_results_to_model_index

    r = e.result
    dataset_id = f"{namespace}/{e.task}"
    notes = (f"defectbench {e.task}, test split of {e.build.describe().replace('`', '')}; threshold "
             f"{threshold_text(e)}; figures recomputed from the predictions by the defectbench leaderboard")
    entries = [EvalResultEntry(dataset_id=dataset_id, task_id=e.task, value=round(float(e.value), 6) if e.value is not None else None,
                               date=r.created, notes=notes)]
    keys = (("f1", "precision", "recall", "average_precision", "accuracy") if r.task == "framewise"
            else ("balanced_accuracy", "accuracy"))
    task_type = "audio-classification"
    legacy = [EvalResult(task_type=task_type, task_name=f"defect detection ({r.task})", dataset_type=dataset_id,
                         dataset_name=f"defectbench {e.task}", dataset_split=r.dataset.split,
                         dataset_revision=r.dataset.fingerprint, metric_type=k,
                         metric_name=k.replace("_", " ") + (" (%)" if r.task == "framewise" else ""),
                         metric_value=round(float(e.metrics[k]), 6))
              for k in keys if e.metrics.get(k) is not None]
    return eval_result_entries_to_yaml(entries), eval_results_to_model_index(r.model.name, legacy)


def export_eval_results(board: Board, namespace: str = "defectbench") -> list[Path]:
    """Write ``export/<task>/<name>/.eval_results/<task>.yaml`` and ``model-index.yaml`` for every entry."""
    import yaml

    export = board.root / "export"
    remove_owned(export, ("board-export",), why=" (the board's Hub export)")  # the previous render's, if ours
    export.mkdir(parents=True)
    mark(export, "board-export")
    written = []
    for e in board.entries:
        short, model_index = eval_results(e, namespace)
        folder = export / e.task / e.name
        (folder / ".eval_results").mkdir(parents=True)
        p1 = folder / ".eval_results" / f"{e.task}.yaml"
        p1.write_text(yaml.safe_dump(short, sort_keys=False))
        p2 = folder / "model-index.yaml"
        p2.write_text(yaml.safe_dump({"model-index": model_index}, sort_keys=False))
        written += [p1, p2]
    return written
