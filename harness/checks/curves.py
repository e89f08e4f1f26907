"""Reading the training curves: overfitting, divergence, validation above training, too few
epochs. Pure functions of a history (`{"loss": [...], "val_accuracy": [...], ...}`)."""

from __future__ import annotations

import math

from harness.checks import Context, Outcome, register
from harness.record import Finding

EXPLODED = 1e4  # no cross-entropy of a sane model comes near this
ACCURACY_KEYS = ("accuracy", "acc", "binary_accuracy", "sparse_categorical_accuracy", "categorical_accuracy")


def _pair(history: dict[str, list[float | None]]) -> tuple[list[float], list[float]] | None:
    for key in ACCURACY_KEYS:
        acc, val = history.get(key), history.get("val_" + key)
        if acc and val and None not in acc and None not in val:
            return acc, val
    return None


def diagnose(history: dict[str, list[float | None]]) -> list[Finding]:
    found: list[Finding] = []
    loss = history.get("loss") or []
    bad = [i for i, v in enumerate(loss) if v is None or not math.isfinite(v)]
    if bad:
        found.append(Finding(rule="divergence", severity="warning", message=(
            f"The training loss became NaN or infinite at epoch {bad[0] + 1}: training diverged. Lower the learning "
            f"rate, check the input scaling (pixels /255) and the labels.")))
        return found
    if loss and max(loss) > EXPLODED:
        epoch = max(range(len(loss)), key=loss.__getitem__)
        found.append(Finding(rule="divergence", severity="warning", message=(
            f"The training loss exploded to {loss[epoch]:.3g} at epoch {epoch + 1}: the weights blew up. Lower the "
            f"learning rate and check the input scaling (pixels /255).")))
    elif len(loss) >= 3 and loss[-1] > 3 * min(loss) and loss[-1] > loss[0]:
        found.append(Finding(rule="divergence", severity="warning", message=(
            f"The training loss grew from {min(loss):.3f} to {loss[-1]:.3f}: training is diverging. Lower the "
            f"learning rate.")))
    pair = _pair(history)
    val_loss = [v for v in history.get("val_loss") or [] if v is not None]
    if pair:
        acc, val = pair
        n = min(len(acc), len(val))
        acc, val = acc[:n], val[:n]
        if n >= 4:
            half = n // 2
            stalled = max(val[half:]) - max(val[:half]) < 0.03
            gap = acc[-1] - val[-1]
            rising = acc[-1] - acc[half - 1] > 0.02
            if rising and ((gap > 0.1 and stalled) or gap > 0.2):
                found.append(Finding(rule="overfitting", severity="warning", message=(
                    f"Overfitting: training accuracy climbed to {acc[-1]:.3f} while validation accuracy stalled "
                    f"around {max(val):.3f} from epoch {val.index(max(val)) + 1}. The model memorises the training "
                    f"images. Try data augmentation, Dropout, a smaller model or fewer epochs.")))
        if n >= 2:
            end_gap = sum(v - a for v, a in zip(val[-2:], acc[-2:])) / 2
            if end_gap > 0.1:
                found.append(Finding(rule="validation-above-training", severity="warning", message=(
                    f"Validation accuracy ({val[-1]:.3f}) is far above training accuracy ({acc[-1]:.3f}). Heavy "
                    f"augmentation or dropout can do this, but so can validation images that leaked from training "
                    f"or are much easier: check the splits.")))
        if n >= 3 and val[-1] - val[-3] > 0.02 and val[-1] >= max(val):
            found.append(Finding(rule="not-converged", severity="info", message=(
                f"Validation accuracy was still rising by {(val[-1] - val[-3]) / 2:.3f} per epoch at the end "
                f"({n} epochs): more epochs would likely help.")))
    if not any(f.rule == "overfitting" for f in found) and len(val_loss) >= 4 and len(loss) >= 4:
        best = min(range(len(val_loss)), key=val_loss.__getitem__)
        if best <= len(val_loss) - 3 and val_loss[-1] > 1.2 * val_loss[best] and loss[-1] < loss[best]:
            found.append(Finding(rule="overfitting", severity="warning", message=(
                f"Overfitting: validation loss was lowest at epoch {best + 1} ({val_loss[best]:.3f}) and rose to "
                f"{val_loss[-1]:.3f} while training loss kept falling. Stop earlier (EarlyStopping on a validation "
                f"split) or regularise the model.")))
    return found


@register("training-curves")
def training_curves(ctx: Context) -> Outcome:
    """Diagnostics only: findings, no points."""
    if ctx.quick:
        return Outcome(None)
    fits = [f for f in ctx.evidence.fits if f.end or f.error]
    where = ctx.evidence.where(fits[-1].start.get("where")) if fits else None
    return Outcome(None, [f.model_copy(update={"where": where}) for f in diagnose(ctx.evidence.history())])
