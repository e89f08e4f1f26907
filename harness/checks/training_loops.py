"""Custom training loops (GradientTape, train_on_batch): scored, but not checked for leaks.

The probe sees a training step outside `fit` (an optimizer applying gradients, `train_on_batch`)
and which model it trained; it cannot see which data such a loop trains on. The model is still
saved and scored on the holdout; this note says what could not be checked and how to get it checked.
"""

from __future__ import annotations

from harness.checks import Context, Outcome, register
from harness.record import Finding

API_NAMES = {"GradientTape": "a custom training loop (an optimizer applying gradients, e.g. with tf.GradientTape)",
             "train_on_batch": "train_on_batch"}


def training_loop_notes(ctx: Context) -> list[Finding]:
    ev = ctx.evidence
    if not ev.training_loops:
        return []
    seen = []
    for event in ev.training_loops:
        name = API_NAMES.get(str(event.get("api")), str(event.get("api"))[:50])
        if name not in seen:
            seen.append(name)
    saved = next((e for e in reversed(ev.events) if e.get("kind") == "model_saved"), None)
    chosen = saved.get("chosen") if isinstance(saved, dict) and isinstance(saved.get("chosen"), str) else None
    scored = f" The model scored on the held-out data is {chosen[:120]}." if chosen and not ctx.quick else ""
    return [Finding(
        rule="training-loop-unobserved", severity="info", where=ev.where(ev.training_loops[0].get("where")),
        message=(f"Your model was trained with {' and '.join(seen)}.{scored} The grader cannot see which data "
                 f"a custom training loop trains on, so this loop was not checked for data leaks (test images "
                 f"in training, augmented validation data, ...). Train with model.fit if you want it checked."))]


@register("training-loop")
def training_loop(ctx: Context) -> Outcome:
    return Outcome(None, training_loop_notes(ctx))
