"""The benchmark leaderboard: FLOPs counting, timings read from the run folder, ranking, the
student-visible board, and golden renderings (UPDATE_GOLDEN=1 rewrites them)."""

import math
import os
from html.parser import HTMLParser

import pandas as pd
import pytest

from harness import leaderboard
from harness.cli import harness_main
from harness.leaderboard import Entry, flops_per_image
from harness.record import Layer
from sample_run import GOLDEN, SECRET_IDS, entries, full_marks, write_run


def layers(*rows):
    return [Layer(name=f"l{i}", type=t, output_shape=s, params=p) for i, (t, s, p) in enumerate(rows)]


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.is_file(), f"{path} missing: run with UPDATE_GOLDEN=1 once and review it"
    assert text == path.read_text(), f"{name} differs from the golden file (UPDATE_GOLDEN=1 after review)"


# ---- FLOPs per image

SMALL = [("InputLayer", [None, 28, 28, 1], 0),
         ("Conv2D", [None, 26, 26, 8], 80),        # 3x3 kernel, 1 input channel: 8 * (9 + 1) params
         ("MaxPooling2D", [None, 13, 13, 8], 0),
         ("Flatten", [None, 1352], 0),
         ("Dense", [None, 10], 13530)]             # (1352 + 1) * 10


def test_flops_of_a_hand_counted_model():
    # Conv2D: 26*26 positions * 8 filters * (9 multiply-adds + 1 bias) = 54,080 MACs -> 108,160 FLOPs
    # MaxPooling2D 2x2: 13*13*8 outputs * 4 values read = 5,408
    # Dense: 1352 * 10 multiply-adds + 10 biases = 13,530 MACs -> 27,060 FLOPs
    assert flops_per_image(layers(*SMALL)) == 108_160 + 5_408 + 27_060 == 140_628


def test_flops_of_the_reference_mnist_model():
    from sample_run import MNIST_LAYERS
    # conv 2*832*784 + pool 14*14*32*4 + conv 2*8256*196 + pool 7*7*64*4 + dense 2*3137000 + dense 2*10010
    assert flops_per_image(layers(*MNIST_LAYERS)) == 1_304_576 + 25_088 + 3_236_352 + 12_544 + 6_274_000 + 20_020


def test_flops_of_global_pooling_batchnorm_and_odd_pool_sizes():
    model = layers(("Conv2D", [None, 15, 15, 4], 40), ("BatchNormalization", [None, 15, 15, 4], 16),
                   ("MaxPooling2D", [None, 7, 7, 4], 0),                  # 15 -> 7: a 2x2 window
                   ("GlobalAveragePooling2D", [None, 4], 0), ("Dense", [None, 2], 10))
    assert flops_per_image(model) == 2 * 40 * 225 + 2 * 900 + 7 * 7 * 4 * 4 + 7 * 7 * 4 + 2 * 10


@pytest.mark.parametrize("rows", [
    [("DepthwiseConv2D", [None, 26, 26, 8], 80)],                       # a layer the rule does not count
    [("Conv2D", [None, 26, 26, 8], None)],                              # no parameter count
    [("Conv2D", [None, None, None, 8], 80)],                            # unknown output size
    [("MaxPooling2D", [None, 13, 13, 8], 0)],                           # pooling without a known input
    [("Conv2D", [None, 26, 26, 8], 81)],                                # params that no channels-last conv has
    [("Conv2D", [None, 26, 26, 8], 80), ("Functional", [None, 10], 13530)],  # a nested model
])
def test_flops_are_none_rather_than_wrong(rows):
    assert flops_per_image(layers(*rows)) is None


# ---- the run folder

def test_load_run_reads_records_and_their_evaluation_timings(tmp_path):
    run = leaderboard.load_run(write_run(tmp_path))
    by_job = {(e.record.student, e.record.assignment): e for e in run.entries}
    assert len(by_job) == 7 and run.unreadable == []
    assert by_job[("alice", "mnist-cnn")].timings["predict_seconds"] == 2.5
    assert by_job[("carol", "mnist-cnn")].timings == {}


def test_load_run_lists_what_is_not_a_record_and_ignores_bad_timings(tmp_path):
    write_run(tmp_path, entries()[:1])
    (tmp_path / "alice" / "notes.json").write_text('{"not": "a record"}')
    (tmp_path / "alice" / "mnist-cnn.evidence" / "evaluation.json").write_text('{"timings": {"n": "many"}}')
    run = leaderboard.load_run(tmp_path)
    assert [p.name for p in run.unreadable] == ["notes.json"]
    assert run.entries[0].timings == {}


def test_inference_figures_come_from_the_trusted_timings():
    assert leaderboard.inference({"predict_seconds": 2.5, "n": 10000}) == (4000.0, 0.25)
    assert leaderboard.inference({}) == (None, None)
    assert leaderboard.inference({"predict_seconds": 0.0, "n": 10}) == (None, None)
    # the steady rate over stretches of batches, where the evaluation stored it, wins over the whole pass
    assert leaderboard.inference({"predict_seconds": 2.5, "n": 10000, "steady_images_per_second": 5000.0}) == (5000.0, 0.2)


def test_gpu_seconds_count_the_gpus_a_job_held_and_tensorflow_saw():
    rec = entries()[0].record

    def with_run(**update):
        return leaderboard.Entry(rec.model_copy(update={"run": rec.run.model_copy(update=update)}))
    assert leaderboard.gpu_seconds(with_run(gpus=[], wall_seconds=100.0)) is None
    assert leaderboard.gpu_seconds(with_run(gpus=["0", "1"], wall_seconds=100.0, evaluation_seconds=20.0,
                                            tensorflow_gpus=["/physical_device:GPU:0", "/physical_device:GPU:1"])) == 240.0
    assert leaderboard.gpu_seconds(with_run(gpus=["3"], wall_seconds=50.0, evaluation_seconds=None,
                                            tensorflow_gpus=None)) == 50.0
    assert leaderboard.gpu_seconds(with_run(gpus=["0"], wall_seconds=50.0, tensorflow_gpus=[])) is None, \
        "a GPU TensorFlow did not see was not used"
    assert leaderboard.gpu_seconds(with_run(gpus=["all"], wall_seconds=10.0, evaluation_seconds=0.0,
                                            tensorflow_gpus=["a", "b", "c"])) == 30.0


# ---- tables

def test_frame_has_every_column_and_empty_cells_where_nothing_was_measured():
    df = leaderboard.frame(entries())
    assert list(df.columns) == leaderboard.COLUMNS[1:]
    carol = df[df.student == "carol"].iloc[0]
    assert pd.isna(carol.private_accuracy) and pd.isna(carol.images_per_second) and pd.isna(carol.flops_per_image)
    assert df.gpu_seconds.isna().all(), "no record says it used a GPU"
    alice = df[(df.student == "alice") & (df.assignment == "mnist-cnn")].iloc[0]
    assert (alice.private_accuracy, alice.public_accuracy, alice.params) == (0.9912, 0.9898, 3_156_098)
    assert math.isclose(alice.latency_ms, 0.25) and alice.train_seconds == 120.0 and alice.peak_memory_mb == 1500.0


def test_assignment_board_ranks_by_score_then_private_accuracy_and_shares_ties():
    board = leaderboard.per_assignment(leaderboard.frame(entries()))["mnist-cnn"]
    assert list(board.student) == ["alice", "dave", "bob", "carol"]
    assert list(board["rank"]) == [1, 1, 3, 4], "alice and dave have the same score and private accuracy"


def test_public_board_ranks_by_public_accuracy_and_holds_nothing_private():
    sections = leaderboard.boards(entries(), public=True)
    assert "overall" not in sections
    board = sections["mnist-cnn"]
    assert list(board.student) == ["dave", "alice", "bob", "carol"]
    assert not {"private_accuracy", "score", "max_score", "status"} & set(board.columns)
    rendered = leaderboard.to_csv(board) + leaderboard.to_markdown(board)
    assert "0.9912" not in rendered and "0.97," not in rendered, "a private accuracy leaked into the public board"


def test_overall_board_sums_scores_per_student():
    board = leaderboard.overall(leaderboard.frame(entries()))
    alice = board[board.student == "alice"].iloc[0]
    assert (alice["rank"], alice.assignments, alice.score, alice.max_score, alice.train_seconds) == (1, 2, 150, 150, 129.5)


def test_leaderboard_renderings_match_golden_files():
    sections = leaderboard.boards(entries())
    golden("leaderboard.md", "\n".join(leaderboard.to_markdown(b, name) for name, b in sections.items()))
    golden("leaderboard-mnist-cnn.csv", leaderboard.to_csv(sections["mnist-cnn"]))
    golden("leaderboard-overall.csv", leaderboard.to_csv(sections["overall"]))


class _Tables(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables, self.headers, self.values, self.script = 0, 0, [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tables += tag == "table" and attrs.get("class") == "leaderboard"
        self.headers += tag == "th"
        if tag == "td":
            self.values.append(attrs.get("data-value"))
        self.script |= tag == "script"


def test_html_page_is_sortable_and_escapes_names():
    rows = entries()
    rows[0] = Entry(full_marks("<b>eve</b>", 0.99, 0.99), rows[0].timings)
    page = leaderboard.to_html(leaderboard.boards(rows))
    parsed = _Tables()
    parsed.feed(page)
    assert parsed.tables == 4 and parsed.script, "one sortable table per section, with the sorting script"
    assert "<b>eve</b>" not in page and "&lt;b&gt;eve&lt;/b&gt;" in page
    assert "4000.0" in parsed.values, "cells carry raw numbers to sort on, not the formatted text"


def test_cli_writes_the_leaderboard_into_the_run_folder(tmp_path, capsys):
    run = write_run(tmp_path / "reports")
    assert harness_main(["leaderboard", str(run)]) == 0
    folder = run / "leaderboard"
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == [
        "leaderboard.html", "leaderboard.md", "mnist-cnn.csv", "overall.csv", "ox.csv", "unknown.csv"]
    assert pd.read_csv(folder / "mnist-cnn.csv").student.tolist() == ["alice", "dave", "bob", "carol"]
    assert harness_main(["leaderboard", str(run), "--public", "--format", "csv"]) == 0
    public = pd.read_csv(folder / "public" / "mnist-cnn.csv")
    assert "private_accuracy" not in public.columns
    assert not list((run / "leaderboard").rglob("*.json")), "no file where the record loaders look"
    assert harness_main(["leaderboard", str(tmp_path / "nowhere")]) == 4


def test_private_holdout_ids_never_reach_the_leaderboard():
    sections = leaderboard.boards(entries())
    text = leaderboard.to_html(sections) + "".join(leaderboard.to_csv(b) for b in sections.values())
    assert not any(secret in text for secret in SECRET_IDS)


def test_an_empty_run_renders_empty_boards(tmp_path):
    sections = leaderboard.boards([])
    assert list(sections) == ["overall"] and sections["overall"].empty
    written = leaderboard.write(tmp_path, [])
    assert (tmp_path / "leaderboard" / "leaderboard.html").is_file() and len(written) == 3
