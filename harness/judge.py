"""The judge stage of a job: stored evidence and measurements → checks, findings, record.

Pure over what the run stage stored (`harness.execute`): nothing here starts a sandbox or runs
student code, so `harness rescore` can apply a changed rule or threshold to a whole class.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from harness import __version__, checks, evidence
from harness.evaluate import Evaluation
from harness.execute import load_stored, result_of, stored_entry
from harness.record import Check, ModelSummary, Record, RunInfo, SubmissionInfo
from harness.spec import LoadedAssignment


@dataclass(frozen=True)
class JobInfo:
    """Who and what a record is about (from discovery, or from the record being judged again)."""

    student: str
    assignment: str
    entry: str
    files: dict[str, str]
    assignment_digest: str | None


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def status_of(ctx: checks.Context, what: str | None) -> str:
    result = ctx.result
    if result.timed_out:
        return "timeout"
    if result.memory_exceeded:
        return "memory-limit"
    if what is not None:
        return "no-model" if what.startswith("NotImplementedError") and ctx.verified_model is None else "error"
    if ctx.quick:
        return "graded" if ctx.verified_model is not None else "no-model"
    return "graded" if getattr(ctx.evaluation, "loaded", False) else "no-model"


def summary_of(status: str, checked: list[Check], what: str | None, where: str | None,
               evaluation: Evaluation | None) -> str:
    why = (evaluation.model_error or evaluation.error) if evaluation is not None else None
    head = {
        "graded": "Graded.",
        "timeout": "The run hit the time limit.",
        "memory-limit": "The run hit the memory limit.",
        "error": f"The run stopped with an error{' at ' + where if where else ''}: {_sentence(what)}",
        "no-model": (f"The model is not built yet: the run stopped{' at ' + where if where else ''} on a placeholder "
                     f"still to be replaced ({what})." if what else
                     f"No model the grader could load was found: {why or 'the submission never saved or trained one'}."),
    }[status]
    failed = [c.id for c in checked if c.status in ("fail", "error")]
    tail = f" Not passed: {', '.join(failed)}." if failed else (" All checks passed." if checked else "")
    return head + tail


def _sentence(text: str | None) -> str:
    text = (text or "").rstrip()
    return text if text.endswith((".", "!", "?")) else text + "."


def model_summary(table: dict | None, source: str | None) -> ModelSummary | None:
    if not table:
        return None
    try:
        return ModelSummary.model_validate({
            "total_params": table.get("total_params"), "trainable_params": table.get("trainable_params"),
            "layers": [{k: layer.get(k) for k in ("name", "type", "output_shape", "params")}
                       for layer in table.get("layers") or []],
            "source": source})
    except ValueError:
        return None


def judge(job: JobInfo, loaded: LoadedAssignment, folder: Path, holdout_signatures: np.ndarray | None) -> Record:
    run_record, evaluation = load_stored(folder)
    quick = run_record.mode == "quick"
    result = result_of(run_record)
    ev = evidence.read(folder)
    ctx = checks.Context(assignment=loaded, evidence=ev, result=result, quick=quick, evaluation=evaluation,
                         entry=stored_entry(folder, run_record), holdout_signatures=holdout_signatures,
                         runtime=run_record.runtime)
    checked, findings = checks.run_all(ctx)
    what, where = checks.builtin.ending(ctx)
    status = status_of(ctx, what)
    counted = [c for c in checked if c.status != "skip" or c.max_points > 0]  # a skip with max_points still counts (as 0)
    source = f"{evaluation.model_file}, read by the grader" if evaluation.model_file else None
    return Record(
        harness_version=__version__, created_at=now(), student=job.student, assignment=job.assignment,
        status=status, score=round(sum(c.points for c in counted), 2),
        max_score=round(sum(c.max_points for c in counted), 2),
        summary=summary_of(status, checked, what, where, evaluation),
        checks=checked, findings=findings, model=model_summary(ctx.verified_model, source),
        metrics=evaluation.metrics,
        history=ev.history(),
        run=RunInfo(sandbox=result.sandbox, runtime=run_record.runtime,
                    runtime_reason=run_record.runtime_reason or None, mode=run_record.mode,
                    wall_seconds=result.wall_seconds, peak_memory_mb=result.peak_memory_mb,
                    exit_code=result.exit_code, evaluation_seconds=evaluation.seconds or None,
                    gpus=list(result.gpus), tensorflow_gpus=evaluation.tensorflow_gpus),
        submission=SubmissionInfo(entry=job.entry, files=job.files, assignment_digest=job.assignment_digest),
        evidence_problems=ev.problems)
