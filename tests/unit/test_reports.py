"""The Markdown report is the student's: the private holdout's result stays out unless the assignment allows it."""

from harness.record import Finding
from harness.reports import markdown
from harness.spec import ReportRules

from sample_run import check, make, model, MNIST_LAYERS, private_metrics


def leaky_record():
    return make("eve", "mnist-cnn", mdl=model(MNIST_LAYERS), metrics=private_metrics(0.9731, 0.9958),
                checks=[check("completes", "pass", 10, 10, "ran"),
                        check("architecture", "pass", 40, 40, "matches"),
                        check("holdout-accuracy", "fail", 12.5, 40, "Accuracy on 5,000 held-out images: 0.9731."),
                        check("no-leaks", "pass", 10, 10, "none")],
                findings=[Finding(rule="accuracy-review", severity="warning", message="0.9731 is far above"),
                          Finding(rule="overfitting", severity="warning", message="curves part")],
                summary="Graded. Not passed: holdout-accuracy.")


def test_student_report_hides_the_private_result_by_default():
    text = markdown(leaky_record())
    assert "0.9731" not in text and "12.5" not in text and "72.5" not in text
    assert "accuracy-review" not in text and "overfitting" in text
    assert "60 / 60 points shown" in text and "not shown yet" in text
    assert "All visible checks passed." in text and "Not passed: holdout-accuracy" not in text
    assert "0.9958" in text  # the public part is what a course shows during an assignment


def test_an_assignment_can_show_the_private_result():
    text = markdown(leaky_record(), ReportRules(show_private_scores=True))
    assert "0.9731" in text and "72.5 / 100 points" in text and "accuracy-review" in text


def test_gradescope_output_hides_the_private_review_finding_until_published():
    from harness.exports import gradescope_results
    from harness.leaderboard import Entry
    entry = Entry(record=leaky_record())
    hidden = gradescope_results(entry)
    assert "accuracy-review" not in hidden["output"] and "0.9731" not in hidden["output"]
    assert "overfitting" in hidden["output"]
    shown = gradescope_results(entry, private_visibility="visible")
    assert "accuracy-review" in shown["output"]
