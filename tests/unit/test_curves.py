from harness.checks.curves import diagnose


def rules(history):
    return [f.rule for f in diagnose(history)]


def test_seed_004_baseline_overfits():
    # training accuracy towards 100 % while validation stalls at 70-72 % (seed 004)
    acc = [0.55, 0.65, 0.74, 0.82, 0.90, 0.95, 0.98, 0.99]
    val = [0.60, 0.66, 0.70, 0.71, 0.72, 0.70, 0.71, 0.71]
    assert "overfitting" in rules({"acc": acc, "val_acc": val, "loss": [1] * 8})


def test_rising_validation_loss_is_overfitting():
    history = {"loss": [1.0, 0.6, 0.4, 0.3, 0.2, 0.1], "val_loss": [1.0, 0.7, 0.65, 0.8, 0.9, 1.0]}
    (finding,) = diagnose(history)
    assert finding.rule == "overfitting" and "epoch 3" in finding.message


def test_healthy_curves_have_no_warning():
    history = {"accuracy": [0.80, 0.88, 0.90, 0.91, 0.92], "val_accuracy": [0.85, 0.88, 0.89, 0.90, 0.905],
               "loss": [0.6, 0.35, 0.3, 0.27, 0.25], "val_loss": [0.45, 0.35, 0.32, 0.3, 0.29]}
    assert [f for f in diagnose(history) if f.severity != "info"] == []


def test_nan_loss_is_divergence():
    assert rules({"loss": [2.3, 5.0, float("nan")]}) == ["divergence"]
    assert rules({"loss": [2.3, 5.0, None]}) == ["divergence"]


def test_exploding_loss_is_divergence():
    assert "divergence" in rules({"loss": [2.3, 1.0, 40.0, 900.0]})
    # blown-up weights, then a dead network at chance level: still divergence
    assert rules({"loss": [1.5e35, 2.49, 2.53]}) == ["divergence"]


def test_validation_far_above_training():
    assert "validation-above-training" in rules({"accuracy": [0.5, 0.55, 0.6], "val_accuracy": [0.7, 0.75, 0.8]})


def test_still_improving_is_not_converged():
    assert "not-converged" in rules({"accuracy": [0.5, 0.6, 0.7], "val_accuracy": [0.5, 0.6, 0.7]})


def test_short_or_missing_history_is_quiet():
    assert diagnose({}) == [] and diagnose({"loss": [1.0]}) == []
