"""Trusted-evaluation throughput (images/s) against plain `model.predict` on the same model and
data, in one run. Target (issue: trusted evaluation): ratio >= 0.8.

Both are measured the same way: batches of `harness.evaluator.predict.BATCH_SIZE`, one warm-up
batch first that is not timed (it builds the prediction function), then the 10,000 official test
images. Trusted throughput counts the evaluator's own preparation and prediction (images scaled and
predicted inside the evaluation sandbox); sandbox start, TensorFlow import and model loading are
printed separately.

Default: the fashion-mnist-cnn architecture trained here for one epoch on 6,000 images.
`--graded`: the leaderboard's figure instead (issue 9: "inference images/s in the leaderboard agrees
with this benchmark within 20 %"): grades one reference in full (a copy of
reference/fashion-mnist-cnn.ipynb trained for `--epochs`, default 1: the model, and so its speed, is
the same), reads the leaderboard's inference images/s (the trusted evaluation's median batch of one pass,
after warm-up), and measures the model file that grade scored here, as above and by the median batch too. Prints both and their ratio; the machine's load average is printed with every figure
(a shared machine makes single timings noisy: `--repeat` takes medians).
Usage: python benchmarks/evaluation_throughput.py [--graded [--epochs N]] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's harness


def load() -> str:
    return f"load average {os.getloadavg()[0]:.2f}"


def plain_predictor(model_file: Path, x):
    """A function timing `model.predict` on all of `x` in this process: (images/s of the whole pass,
    images/s of its median batch, as the trusted evaluation reports the leaderboard's figure: Keras's predict
    callbacks, `harness.evaluator.predict.timed_predict`); the model is loaded and warmed up once."""
    import keras
    from harness.evaluator.predict import BATCH_SIZE, KerasModel, timed_predict
    model = KerasModel(keras.models.load_model(model_file), keras)
    model.predict(x[:BATCH_SIZE], batch_size=BATCH_SIZE)
    if len(x) % BATCH_SIZE:
        model.predict(x[len(x) - len(x) % BATCH_SIZE:], batch_size=BATCH_SIZE)

    def rate() -> tuple[float, float]:
        start = time.perf_counter()
        _, rates = timed_predict(model, x, BATCH_SIZE)
        return len(x) / (time.perf_counter() - start), statistics.median(rates)
    return rate


def trusted_evaluator(loaded, model_file: Path, data_root: Path, tmp: Path):
    """A function running the trusted evaluation of `model_file` once: (images/s of prediction,
    images/s of preparation + prediction, the Evaluation)."""
    from harness import evidence
    from harness.evaluate import evaluate
    from harness.sandbox import get
    ev_dir = tmp / "trusted-evidence"
    ev_dir.mkdir(exist_ok=True)
    shutil.copyfile(model_file, ev_dir / "model.keras")
    (ev_dir / "events.jsonl").write_text('{"seq": 1, "kind": "model_saved"}\n')

    def once():
        result = evaluate(loaded, evidence.read(ev_dir), get("bwrap"), data_root)[0]
        t = result.timings
        from harness.leaderboard import inference  # the leaderboard's own reading of the timings
        return inference(t)[0], t["n"] / (t["prepare_seconds"] + t["predict_seconds"]), result
    return once


def alternated(trusted, plain, repeat: int):
    """Medians of `repeat` trusted evaluations and plain predictions, measured in turn (same load)."""
    predict, whole, plains, batches, result = [], [], [], [], None
    for _ in range(repeat):
        p, w, result = trusted()
        predict.append(p)
        whole.append(w)
        pass_rate, batch_rate = plain()
        plains.append(pass_rate)
        batches.append(batch_rate)
    return (statistics.median(predict), statistics.median(whole), statistics.median(plains),
            statistics.median(batches), result)


def holdout_x(loaded, root: Path):
    import numpy as np
    from harness.data import providers
    holdout = providers.holdout(loaded.spec.data, root)
    x = np.load(holdout.folder / "images.npy").astype(np.float32).reshape(-1, 28, 28, 1)
    return x / 255.0, holdout  # as the evaluator prepares them: float32, scaled


def prepare_data(root: Path) -> None:
    subprocess.run([sys.executable, "-c", "import sys; from harness.cli import harness_main; "
                    "sys.exit(harness_main(sys.argv[1:]))", "data", "prepare", "fashion_mnist", "--data-root", str(root)],
                   check=True, stdout=subprocess.DEVNULL, cwd=ROOT)


def trained_here(tmp: Path, root: Path, repeat: int) -> None:
    import keras
    from keras import layers
    from harness import spec
    loaded = spec.load_all(ROOT / "assignments")["fashion-mnist-cnn"]
    x, holdout = holdout_x(loaded, root)
    model = keras.Sequential([
        keras.Input((28, 28, 1)), layers.Conv2D(32, 5, padding="same", activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(64, 2, padding="same", activation="relu"), layers.MaxPooling2D(), layers.Dropout(0.25),
        layers.Flatten(), layers.Dense(1000, activation="relu"), layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:6000], holdout.labels[:6000], epochs=1, verbose=0)
    model.save(tmp / "model.keras")
    _, whole, plain, _, result = alternated(trusted_evaluator(loaded, tmp / "model.keras", root, tmp),
                                         plain_predictor(tmp / "model.keras", x), repeat)
    t = result.timings
    print(f"plain model.predict:   {plain:9.0f} images/s  (median of {repeat}; {load()})")
    print(f"trusted evaluation:    {whole:9.0f} images/s  (prepare {t['prepare_seconds']:.2f} s + "
          f"predict {t['predict_seconds']:.2f} s; {load()})")
    print(f"  fixed costs: model load {t['load_seconds']:.2f} s; warm-up batch {t.get('warmup_seconds', 0):.2f} s; "
          f"whole evaluation incl. sandbox and TensorFlow import {result.seconds:.2f} s; "
          f"holdout accuracy {result.metrics.holdout_accuracy}")
    print(f"ratio: {whole / plain:.2f}  (target >= 0.8)")


def graded(tmp: Path, root: Path, epochs: int, repeat: int) -> None:
    """Grade a reference in full, then compare the leaderboard's images/s with this benchmark's."""
    import harness.execute as execute_stage
    from harness import leaderboard, spec
    from harness.cli import grade_main
    student = tmp / "class" / "reference"
    student.mkdir(parents=True)
    text = (ROOT / "reference" / "fashion-mnist-cnn.ipynb").read_text()
    (student / "fashion-mnist-cnn.ipynb").write_text(text.replace("epochs=5", f"epochs={epochs}"))
    kept = tmp / "scored-model.keras"
    scoring = execute_stage.evaluate

    def keep_scored_model(loaded, ev, sandbox, data_root, **kwargs):  # the file grade scores, copied aside
        model_file = kwargs.get("model_file") or ev.model_file
        shutil.copyfile(model_file, kept)
        return scoring(loaded, ev, sandbox, data_root, **kwargs)

    execute_stage.evaluate = keep_scored_model
    out = tmp / "out"
    start = time.perf_counter()
    code = grade_main([str(student / "fashion-mnist-cnn.ipynb"), "--out", str(out), "--data-root", str(root),
                       "--no-html", "--assignments", str(ROOT / "assignments")])
    execute_stage.evaluate = scoring
    print(f"grade (full, {epochs} epoch(s)): exit {code}, {time.perf_counter() - start:.0f} s ({load()})")
    run = leaderboard.load_run(out)
    board = run.entries[0]
    board_rate, latency = leaderboard.inference(board.timings)
    if board_rate is None or not kept.is_file():
        raise SystemExit(f"the graded run has no inference timing: {board.record.summary}")
    print(f"leaderboard inference: {board_rate:9.0f} images/s  ({latency:.3f} ms/image; batch "
          f"{board.timings.get('batch_size', 0):g}, warm-up {board.timings.get('warmup_seconds', 0):.2f} s not "
          f"counted; measured during grade)")
    loaded = spec.load_all(ROOT / "assignments")["fashion-mnist-cnn"]
    x, _ = holdout_x(loaded, root)
    predict, whole, plain, batch, _ = alternated(trusted_evaluator(loaded, kept, root, tmp), plain_predictor(kept, x),
                                                 repeat)
    print(f"this benchmark, same model file: trusted evaluation {predict:9.0f} images/s (median batch; with "
          f"preparation, whole pass {whole:.0f}); plain model.predict {batch:9.0f} images/s median batch, "
          f"{plain:.0f} whole pass with its setup  (medians of {repeat}, measured in turn; {load()})")
    print(f"ratio leaderboard / benchmark (trusted evaluation): {board_rate / predict:.2f}; leaderboard / plain "
          f"model.predict (median batch): {board_rate / batch:.2f}  (target: within 0.8-1.2); leaderboard / plain "
          f"whole pass: {board_rate / plain:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--graded", action="store_true", help="compare with the leaderboard of a graded reference")
    parser.add_argument("--epochs", type=int, default=1, help="--graded: epochs the reference trains (default 1)")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per figure (median)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = tmp / "data"
        prepare_data(root)
        if args.graded:
            graded(tmp, root, args.epochs, args.repeat)
        else:
            trained_here(tmp, root, args.repeat)


if __name__ == "__main__":
    main()
