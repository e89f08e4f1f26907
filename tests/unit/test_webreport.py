"""HTML reports (`harness report`): pure rendering of records. Everything a student controls is
escaped, the student's view hides the private holdout, the executed notebook is sanitised, every
page forbids scripts and requests."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

from harness import webreport
from harness.cli import harness_main
from harness.record import Finding, Layer, Metrics
from harness.spec import ExpectedLayer, ExpectedModel, ReportRules
from harness.webreport import Inputs, layer_rows, parse_where, render_record, student_summary
from planted import planted_notebook
from sample_run import MNIST_LAYERS, check, entries, full_marks, make, model, private_metrics, write_run

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = '<script>window.pwned=1</script><img src="http://127.0.0.1:9/x.png" onerror="pwned=2">'
PRIVATE_ACCURACY = 0.9123
SECRET_IDS = ["test-00017", "test-04242"]


def expected(layers) -> ExpectedModel:
    total = sum(p for _, _, p in layers)
    return ExpectedModel(schema_version=1, assignment="mnist-cnn", derived_from="reference/mnist-cnn.py",
                         reference_sha256="0" * 64, total_params=total, trainable_params=total,
                         non_trainable_params=0,
                         layers=[ExpectedLayer(type=t, output_shape=s, params=p) for t, s, p in layers])


def private_record():
    rec = full_marks("alice", PRIVATE_ACCURACY, 0.8888)
    checks = [c if c.id != "holdout-accuracy" else check("holdout-accuracy", "fail", 20, 40,
                                                          f"Accuracy on 5,000 held-out images: {PRIVATE_ACCURACY:.4f}.")
              for c in rec.checks]
    return rec.model_copy(update={
        "checks": checks, "score": 80.0,
        "summary": "Graded. Not passed: holdout-accuracy.",
        "metrics": private_metrics(PRIVATE_ACCURACY, 0.8888, SECRET_IDS),
        "findings": [Finding(rule="accuracy-review", severity="warning",
                             message=f"The held-out accuracy {PRIVATE_ACCURACY:.4f} is far above the reference's.")]})


def text_of(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html)


# ---- escaping and the page's policy


def test_every_student_controlled_field_is_escaped():
    rec = make("alice", "mnist-cnn", mdl=model([("Conv2D", [None, 28, 28, 32], 832)]), summary=HOSTILE,
               checks=[check("architecture", "fail", 0, 40, HOSTILE)],
               findings=[Finding(rule="augmented-validation", severity="error", message=HOSTILE, where=HOSTILE)])
    rec = rec.model_copy(update={
        "model": rec.model.model_copy(update={"layers": [Layer(name=HOSTILE, type=HOSTILE, output_shape=None,
                                                               params=1)], "source": HOSTILE}),
        "evidence_problems": [HOSTILE], "student": HOSTILE,
        "submission": rec.submission.model_copy(update={"entry": HOSTILE, "files": {HOSTILE: "a" * 64}})})
    for view in ("instructor", "student"):
        page = render_record(Inputs(rec=rec, title=HOSTILE), view, {"index": "i.html", "student": "s.html",
                                                                   "submission": "x.html"})
        assert "<script" not in page and 'src="http' not in page and 'onerror="' not in page
        assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in page
        assert page.count(webreport.CSP) == 1 and 'http-equiv="Content-Security-Policy"' in page


def test_the_policy_forbids_scripts_and_requests():
    directives = dict(d.strip().split(" ", 1) for d in webreport.CSP.split(";"))
    assert directives["default-src"] == "'none'" and directives["img-src"] == "data:"
    assert "script-src" not in directives  # falls back to default-src 'none': no script at all
    assert "http" not in webreport.CSP


def test_run_pages_all_carry_the_policy_and_hold_no_script(tmp_path, assignments):
    run = write_run(tmp_path / "run")
    written = webreport.write_run(run, assignments, data_root=tmp_path / "no-data")
    names = {p.relative_to(run / "html").as_posix() for p in written}
    assert {"index.html", "instructor/bob/mnist-cnn.html", "student/bob/mnist-cnn.html",
            "student/frank/unknown.html"} <= names
    for path in written:
        page = path.read_text()
        head = page[:page.index("</head>")]
        assert webreport.CSP in head, path
        assert "<script" not in page.lower(), path
        assert not re.search(r'(src|href)="(https?:)?//', page), path
    index = (run / "html" / "index.html").read_text()
    for student in ("alice", "bob", "carol", "dave", "frank", "grace"):
        assert f'href="instructor/{student}/' in index and f'href="student/{student}/' in index


# ---- what the student's view hides


def test_student_view_hides_private_scores_images_and_hidden_checks():
    rec = private_record()
    thumbs = [webreport.Thumb(id=i, uri="data:image/png;base64,AAAA", true="Coat", predicted="Shirt")
              for i in SECRET_IDS]
    inputs = Inputs(rec=rec, title="t", thumbs=thumbs, classes=["0", "1"])
    instructor = render_record(inputs, "instructor")
    student = render_record(inputs, "student")
    for secret in ("0.9123", "91.23", *SECRET_IDS, "4321", "accuracy-review", "Not passed: holdout-accuracy"):
        assert secret in instructor, secret
        assert secret not in student, secret
    assert "published after the deadline" in student
    assert re.search(r'id="score">60 <small>/ 60 points', student)  # the hidden check's points are left out
    assert "88.88 %" in student  # the public part is public
    assert "Misclassified holdout images" not in student


def test_the_assignment_may_show_private_scores_and_images_to_students():
    rec = private_record()
    thumbs = [webreport.Thumb(id=i, uri="data:image/png;base64,AAAA", true="Coat", predicted="Shirt")
              for i in SECRET_IDS]
    scores = render_record(Inputs(rec=rec, title="t", thumbs=thumbs, rules=ReportRules(show_private_scores=True)),
                           "student")
    assert "91.23 %" in scores and "accuracy-review" in scores and "4321" in scores
    assert SECRET_IDS[0] not in scores
    images = render_record(Inputs(rec=rec, title="t", thumbs=thumbs, rules=ReportRules(show_private_images=True)),
                           "student")
    assert SECRET_IDS[0] in images and "91.23" not in images


def test_student_summary_drops_hidden_results():
    rules = ReportRules()
    rec = private_record()
    assert student_summary(rec, rules) == "Graded. All visible checks passed."
    both = rec.model_copy(update={"summary": "Graded. Not passed: architecture, holdout-accuracy."})
    assert student_summary(both, rules) == "Graded. Not passed: architecture."
    passed = rec.model_copy(update={"summary": "Graded. All checks passed."})
    assert student_summary(passed, rules) == "Graded. All visible checks passed."
    assert student_summary(rec, ReportRules(show_private_scores=True)) == rec.summary


def test_report_rules_parse_with_defaults(assignments):
    from harness.spec import Assignment
    assert assignments["ox"].spec.report == ReportRules()
    raw = {"schema_version": 1, "id": "x", "title": "x", "reference": "r.py",
           "data": {"source": "keras", "name": "mnist", "classes": ["0"], "image_shape": [28, 28]},
           "accuracy": {"threshold": 0.9, "floor": 0.5}, "report": {"show_private_images": True}}
    assert Assignment.model_validate(raw).report.show_private_images is True
    with pytest.raises(ValueError):
        Assignment.model_validate({**raw, "report": {"show_private": True}})


# ---- the layer tables side by side


def test_layer_rows_align_an_extra_layer_and_mark_what_differs():
    bob = MNIST_LAYERS[:1] + [("BatchNormalization", [None, 28, 28, 32], 128)] + MNIST_LAYERS[1:]
    rows = layer_rows(model([("InputLayer", [None, 28, 28, 1], 0)] + bob), expected(MNIST_LAYERS))
    assert [r["kind"] for r in rows] == ["input", "same", "extra"] + ["same"] * 7
    smaller = MNIST_LAYERS[:6] + [("Dense", [None, 256], 803072)] + MNIST_LAYERS[7:]
    rows = layer_rows(model(smaller), expected(MNIST_LAYERS))
    assert rows[6]["kind"] == "differs" and rows[6]["diff"] == {"shape", "params"}
    assert rows[7]["kind"] == "same"
    missing = layer_rows(model(MNIST_LAYERS[:4] + MNIST_LAYERS[5:]), expected(MNIST_LAYERS))
    assert [r["kind"] for r in missing].count("missing") == 1 and missing[4]["mine"] is None


def test_the_page_highlights_differing_values():
    smaller = MNIST_LAYERS[:6] + [("Dense", [None, 256], 803072)] + MNIST_LAYERS[7:]
    rec = make("bob", "mnist-cnn", mdl=model(smaller), checks=[check("architecture", "fail", 35, 40, "differs")])
    page = render_record(Inputs(rec=rec, title="t", expected=expected(MNIST_LAYERS)), "student")
    row = re.search(r'<tr class="kind-differs">(.*?)</tr>', page, re.S).group(1)
    assert '<td class="diff">(None, 256)</td>' in row and "803,072" in row and "3,137,000" in row


def test_parse_where():
    assert parse_where("cell 7, line 3") == ("cell", 7, 3, None)
    assert parse_where("cell 2") == ("cell", 2, None, None)
    assert parse_where("train.py:12") == ("file", None, 12, "train.py")
    assert parse_where(None)[0] == parse_where("somewhere")[0] == "none"


# ---- curves, confusion matrix, misclassified images


def test_learning_curves_are_an_embedded_png():
    uri = webreport.curves_png({"loss": [0.9, 0.5, None], "val_loss": [0.8, 0.6, 0.7], "accuracy": [0.6, 0.8, 0.9],
                                "val_accuracy": [0.6, 0.7, 0.7]})
    assert uri.startswith("data:image/png;base64,")
    from PIL import Image
    import base64, io
    picture = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert picture.size[0] > 600
    assert webreport.curves_png({"lr": [0.1]}) is None



def test_learning_curves_on_the_pages_are_an_embedded_svg_with_both_panels_and_both_series():
    """The pages draw the curves as SVG (no matplotlib: milliseconds per record); the same panels,
    series, markers and labels as `curves_png`, and nothing of the record but numbers."""
    import base64
    import xml.etree.ElementTree as ET
    history = {"loss": [0.9, 0.5, None, 0.3], "val_loss": [0.8, 0.6, 0.7, 0.65],
               "accuracy": [0.6, 0.8, 0.9, 0.92], "val_accuracy": [0.5, 0.7, 0.75, 0.8]}
    uri = webreport.curves_svg(history)
    assert uri.startswith("data:image/svg+xml;base64,")
    svg = base64.b64decode(uri.split(",", 1)[1]).decode()
    root = ET.fromstring(svg)  # well-formed XML
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert {"Loss", "Accuracy", "epoch", "training", "validation"} <= set(texts)
    assert int(root.get("width")) > 600
    polylines = list(root.iter("{http://www.w3.org/2000/svg}polyline"))
    # loss training is cut at the None (one run of 2 points, the single last point has only a marker)
    assert len(polylines) == 1 + 1 + 1 + 1
    assert sum(1 for _ in root.iter("{http://www.w3.org/2000/svg}circle")) == 3 + 4  # training markers
    assert "script" not in svg and "href" not in svg
    assert webreport.curves_svg({"lr": [0.1]}) is None
    flat = webreport.curves_svg({"loss": [0.5] * 30})
    assert ET.fromstring(base64.b64decode(flat.split(",", 1)[1]).decode()) is not None

def fake_holdout(root: Path, n: int = 20) -> list[str]:
    folder = root / "fashion_mnist"
    (folder / "holdout").mkdir(parents=True)
    np.save(folder / "holdout" / "images.npy", np.random.default_rng(0).integers(0, 255, (n, 28, 28), dtype=np.uint8))
    ids = [f"test-{i:05d}" for i in range(n)]
    (folder / "holdout-labels.json").write_text(json.dumps({
        "classes": ["T-shirt/top", "Trouser", "Pullover"], "ids": ids, "labels": [i % 3 for i in range(n)],
        "parts": ["private" if i % 2 else "public" for i in range(n)]}))
    return ids


def test_misclassified_images_with_true_and_predicted_classes(tmp_path, assignments):
    ids = fake_holdout(tmp_path / "data")
    evidence = tmp_path / "run" / "alice" / "fashion-mnist-cnn.evidence"
    evidence.mkdir(parents=True)
    raw = np.zeros((len(ids), 3), dtype=np.float32)
    raw[np.arange(len(ids)), (np.arange(len(ids)) + 1) % 3] = 1.0  # every prediction is the next class
    np.save(evidence / "predictions.npy", raw)
    rec = make("alice", "fashion-mnist-cnn", metrics=Metrics(misclassified=["test-00001", "test-00005", "nope"]))
    thumbs, note, classes = webreport._holdout_thumbs(rec, assignments["fashion-mnist-cnn"], evidence,
                                                      tmp_path / "data")
    assert classes == ["T-shirt/top", "Trouser", "Pullover"] and note is None
    assert [(t.true, t.predicted) for t in thumbs[:2]] == [("Trouser", "Pullover"), ("Pullover", "T-shirt/top")]
    assert thumbs[0].uri.startswith("data:image/png;base64,") and thumbs[2].uri is None
    missing, why, _ = webreport._holdout_thumbs(rec, assignments["fashion-mnist-cnn"], evidence, tmp_path / "none")
    assert missing is None and "--data-root" in why


def test_confusion_rows_name_the_classes():
    rows = webreport.confusion_rows([[3, 1], [0, 4]], ["cat", "dog"])
    assert [r["name"] for r in rows] == ["cat", "dog"] and rows[0]["cells"][0] == {"count": 3, "shade": 0.75,
                                                                                      "diagonal": True}
    assert [r["name"] for r in webreport.confusion_rows([[1]], None)] == ["0"]


# ---- the executed notebook: untrusted, validated, sanitised


def test_executed_notebook_is_sanitised(tmp_path):
    path = tmp_path / "executed.ipynb"
    nbformat.write(planted_notebook(), path)
    nb, problem = webreport.read_notebook(path)
    assert problem is None
    page = webreport.render_notebook(nb, 'alice <script>pwned=0</script>', "back.html")
    head = page[:page.index("</head>")]
    assert webreport.CSP in head
    assert "<script" not in page.lower(), re.findall(r".{80}<script.{80}", page, re.S | re.I)[:3]
    assert not re.search(r'(src|href)="[^"]*127\.0\.0\.1', page)
    for tag in ("<iframe", "<meta http-equiv=\"refresh\"", "<style>body {", "onerror=", "javascript:"):
        assert tag not in page, tag
    assert not re.search(r'<img[^>]+src="(?!data:)', page)
    assert "<h1" in page and "<b>bold</b>" in page and "&lt;script&gt;pwned=5&lt;/script&gt;" in page
    assert 'id="cell-id=cell-2"' in page


def test_an_invalid_or_oversized_notebook_is_reported_not_shown(tmp_path, monkeypatch):
    bad = tmp_path / "executed.ipynb"
    bad.write_text('{"cells": "<script>", "nbformat": 4}')
    nb, problem = webreport.read_notebook(bad)
    assert nb is None and "not a valid notebook" in problem
    nbformat.write(nbformat.v4.new_notebook(), bad)
    monkeypatch.setattr(webreport, "MAX_NOTEBOOK_BYTES", 10)
    nb, problem = webreport.read_notebook(bad)
    assert nb is None and "MB" in problem
    assert webreport.read_notebook(tmp_path / "absent.ipynb")[1] == "no executed notebook was kept for this run"


def test_a_broken_executed_notebook_is_named_on_the_instructor_report(tmp_path, assignments):
    run = write_run(tmp_path / "run", [entries()[6]])  # grace, ox
    evidence = run / "grace" / "ox.evidence"
    (evidence / "code").mkdir(parents=True)
    nbformat.write(planted_notebook(), evidence / "code" / "ox.ipynb")
    (evidence / "executed.ipynb").write_text("{ not json")
    webreport.write_run(run, assignments, data_root=tmp_path / "none")
    report = (run / "html" / "instructor" / "grace" / "ox.html").read_text()
    assert "not a valid notebook" in report
    submission = (run / "html" / "instructor" / "grace" / "ox.submission.html").read_text()
    assert "as handed in" in submission and "<script" not in submission.lower()


def test_findings_link_to_the_cell_and_show_the_line(tmp_path, assignments):
    run = write_run(tmp_path / "run", [entries()[6]])  # grace: augmented-validation at cell 4, line 2
    evidence = run / "grace" / "ox.evidence"
    (evidence / "code").mkdir(parents=True)
    cells = [nbformat.v4.new_markdown_cell("# ox")] + [nbformat.v4.new_code_cell(f"a = {i}\nb = <{i}>\nc = {i}")
                                                      for i in range(4)]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), evidence / "code" / "ox.ipynb")
    nbformat.write(nbformat.v4.new_notebook(cells=cells), evidence / "executed.ipynb")
    webreport.write_run(run, assignments, data_root=tmp_path / "none")
    instructor = (run / "html" / "instructor" / "grace" / "ox.html").read_text()
    assert 'href="ox.submission.html#cell-id=cell-4"' in instructor
    hit = re.search(r'<span class="line hit"><span class="no">2</span>(.*?)</span>', instructor).group(1)
    assert hit == "b = &lt;2&gt;"
    student = (run / "html" / "student" / "grace" / "ox.html").read_text()
    assert 'href="#where-0"' in student and "submission.html" not in student
    assert '<div class="meta">ox.ipynb, cell 4, as handed in</div>' in student  # the file and cell under the lines
    assert 'id="cell-id=cell-4"' in (run / "html" / "instructor" / "grace" / "ox.submission.html").read_text()


def test_harness_report_command(tmp_path, capsys):
    run = write_run(tmp_path / "run")
    code = harness_main(["report", str(run), "--assignments", str(ROOT / "assignments"),
                         "--data-root", str(tmp_path / "none")])
    assert code == 0 and "open" in capsys.readouterr().out
    assert (run / "html" / "index.html").is_file()
    assert harness_main(["report", str(tmp_path / "missing")]) == 4


def test_a_record_the_report_fails_on_does_not_stop_the_others(tmp_path, assignments, monkeypatch):
    run = write_run(tmp_path / "run")
    real = webreport.render_record

    def broken(inputs, view, links=None):
        if inputs.rec.student == "bob":
            raise RuntimeError("boom")
        return real(inputs, view, links)

    monkeypatch.setattr(webreport, "render_record", broken)
    webreport.write_run(run, assignments, data_root=tmp_path / "none")
    index = (run / "html" / "index.html").read_text()
    assert "the report could not be made (RuntimeError: boom)" in index
    assert (run / "html" / "instructor" / "carol" / "mnist-cnn.html").is_file()


def test_findings_in_a_module_and_its_helper_show_their_lines(tmp_path, assignments):
    rec = make("erin", "mnist-cnn", checks=[check("no-leaks", "fail", 0, 10, "leak")],
               findings=[Finding(rule="test-statistics", severity="error", message="m", where="mnist-cnn.py:3"),
                         Finding(rule="split-overlap", severity="error", message="m", where="helper.py:2"),
                         Finding(rule="overfitting", severity="warning", message="m", where="../../etc/passwd:1")])
    rec = rec.model_copy(update={"submission": rec.submission.model_copy(update={"entry": "mnist-cnn.py"})})
    from harness import record
    path = tmp_path / "run" / "erin" / "mnist-cnn.json"
    record.save(rec, path)
    code = path.with_suffix(".evidence") / "code"
    code.mkdir(parents=True)
    (code / "mnist-cnn.py").write_text("import helper\nx = 1\nmean = X_test.mean()\n")
    (code / "helper.py").write_text("def f():\n    return '<b>'\n")
    webreport.write_run(tmp_path / "run", assignments, data_root=tmp_path / "none")
    page = (tmp_path / "run" / "html" / "instructor" / "erin" / "mnist-cnn.html").read_text()
    assert 'href="mnist-cnn.py.submission.html#L3"' not in page  # the module's page is <assignment>.submission.html
    assert 'href="mnist-cnn.submission.html#L3"' in page
    assert re.search(r'<span class="line hit"><span class="no">2</span>    return &#39;&lt;b&gt;&#39;</span>', page)
    assert 'id="where-2"' not in page  # a path outside the stored code is never read
    submission = (tmp_path / "run" / "html" / "instructor" / "erin" / "mnist-cnn.submission.html").read_text()
    assert 'id="L3"' in submission


def test_unchanged_records_are_not_rendered_again(tmp_path, assignments):
    """A second `write_run` on the same folder renders nothing but the index; a changed record, a
    changed evidence file or a deleted page makes that record's pages again, and `force` makes all."""
    run = write_run(tmp_path / "run")
    data = tmp_path / "none"
    first = webreport.write_run(run, assignments, data_root=data)
    pages = sorted(p for p in first if p.name != "index.html")
    assert pages
    before = {p: p.read_text() for p in pages}
    again = webreport.write_run(run, assignments, data_root=data)
    assert [p.name for p in again] == ["index.html"]
    assert {p: p.read_text() for p in pages} == before
    index = (run / "html" / "index.html").read_text()
    assert "instructor/alice/mnist-cnn.html" in index and "student/dave/mnist-cnn.html" in index

    record = run / "bob" / "mnist-cnn.json"
    record.write_text(record.read_text().replace("The model differs from the reference", "The model differs"))
    (run / "dave" / "mnist-cnn.evidence" / "evaluation.json").write_text('{"schema_version": 1, "timings": {}}')
    (run / "html" / "student" / "alice" / "mnist-cnn.html").unlink()
    third = {p.relative_to(run / "html").as_posix() for p in webreport.write_run(run, assignments, data_root=data)}
    assert third == {"index.html", "instructor/bob/mnist-cnn.html", "student/bob/mnist-cnn.html",
                     "instructor/dave/mnist-cnn.html", "student/dave/mnist-cnn.html",
                     "instructor/alice/mnist-cnn.html", "student/alice/mnist-cnn.html"}
    assert "The model differs from the reference" not in (run / "html" / "instructor" / "bob" / "mnist-cnn.html").read_text()
    forced = webreport.write_run(run, assignments, data_root=data, force=True)
    assert sorted(p for p in forced if p.name != "index.html") == pages


def test_the_curves_keep_their_size_whatever_matplotlibrc_the_folder_holds():
    """matplotlib reads `./matplotlibrc` when it is imported, and `grade .` runs in a student's folder: a
    `savefig.dpi: 20000` there made every curve a picture of gigabytes (a PNG of 1.6 MB and 10 s at 2,000)."""
    import base64

    import matplotlib

    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.6], "accuracy": [0.5, 0.7], "val_accuracy": [0.4, 0.6]}
    plain = webreport.curves_png(history)
    with matplotlib.rc_context({"savefig.dpi": 400}):  # what such a file sets
        hostile = webreport.curves_png(history)
    size = lambda uri: len(base64.b64decode(uri.split(",", 1)[1]))  # noqa: E731
    assert size(hostile) < 1.5 * size(plain), (size(plain), size(hostile))


def test_the_curves_ignore_a_matplotlibrc_in_the_folder_grade_runs_in(tmp_path, root):
    """`text.usetex: True` in a student's `./matplotlibrc` made the harness run LaTeX on the host (with a preamble
    the student wrote, able to read the host's files into the picture), or fail where there is none."""
    import subprocess
    import sys
    (tmp_path / "matplotlibrc").write_text("text.usetex: True\nsavefig.dpi: 400\nfigure.dpi: 400\n")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from harness import webreport; "
            "uri = webreport.curves_png({'loss': [1.0, 0.5], 'val_loss': [1.1, 0.6]}); "
            "import matplotlib; print(len(uri), matplotlib.rcParams['text.usetex'])")
    done = subprocess.run([sys.executable, "-c", code, str(root)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    length, usetex = done.stdout.split()
    assert usetex == "False" and int(length) < 60_000, done.stdout
