"""Quick mode's notebook driver runs the cells in its own interpreter (an IPython shell, no kernel):
what it records must be what the kernel driver records. Runs the real driver and probe in a
subprocess (no sandbox, no TensorFlow: a second or two)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat

PROBE = Path(__file__).resolve().parents[2] / "harness" / "probe"


def run_quick(tmp_path, cells):
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    path = tmp_path / "work" / "nb.ipynb"
    path.parent.mkdir()
    (path.parent / "helper_mod.py").write_text("VALUE = 41\n")
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    env = {**os.environ, "HARNESS_EVIDENCE": str(evidence), "HARNESS_QUICK": "1", "PYTHONPATH": str(PROBE),
           "HARNESS_WORKSPACE": str(path.parent), "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, str(PROBE / "run_notebook.py"), str(path)], env=env, cwd=tmp_path,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    read = lambda name: [json.loads(line) for line in (evidence / name).read_text().splitlines()]  # noqa: E731
    return done.returncode, read("driver.jsonl"), read("events.jsonl"), nbformat.read(evidence / "executed.ipynb", 4)


def test_cells_lines_outputs_and_habits_as_in_a_kernel(tmp_path):
    v4 = nbformat.v4
    code, driver, events, executed = run_quick(tmp_path, [
        v4.new_markdown_cell("# title"),
        v4.new_code_cell("import helper_mod\nprint('hi', helper_mod.VALUE)\n!pip install -q surely-not-here\n"
                         "%time y = 2\nhelper_mod.VALUE + 1"),
        v4.new_code_cell("from IPython.display import HTML, display\ndisplay(HTML('<b>b</b>'))\n"
                         "import sys; print('warn', file=sys.stderr)\ninput('name? ')"),
    ])
    assert code == 1
    assert [d["kind"] for d in driver] == ["start", "cell", "cell", "cell_error", "end"]
    assert driver[3]["index"] == 2 and driver[3]["ename"] == "StdinNotImplementedError"  # as a kernel without stdin
    pip = next(e for e in events if e["kind"] == "note" and e["what"] == "pip")
    assert pip["missing"] == ["surely-not-here"] and pip["where"] == {"cell_run": 1, "line": 3}
    error = next(e for e in events if e["kind"] == "exception")
    assert error["where"] == {"cell_run": 2, "line": 4}
    first, second = executed.cells[1], executed.cells[2]
    assert first.execution_count == 1 and second.execution_count == 2
    kinds = [(o.output_type, o.get("name")) for o in first.outputs]
    assert kinds == [("stream", "stdout"), ("execute_result", None)]
    assert first.outputs[0].text.startswith("hi 41\n") and first.outputs[1].data["text/plain"] == "42"
    assert [o.output_type for o in second.outputs] == ["display_data", "stream", "error"]
    assert second.outputs[0].data["text/html"] == "<b>b</b>" and second.outputs[1].name == "stderr"


def test_the_quick_stop_ends_the_run_with_exit_5_and_a_short_note(tmp_path):
    v4 = nbformat.v4
    code, driver, _, executed = run_quick(tmp_path, [
        v4.new_code_cell("import harness_probe\nprint('before')\nraise harness_probe.QuickStop()"),
        v4.new_code_cell("print('never')")])
    assert code == 5 and [d["kind"] for d in driver] == ["start", "cell", "quick_stop", "end"]
    outputs = executed.cells[0].outputs
    assert [o.output_type for o in outputs] == ["stream", "error"] and outputs[1].ename == "QuickStop"
    assert executed.cells[1].outputs == []


def test_outputs_nbformat_would_refuse_keep_their_plain_text_and_the_file_validates(tmp_path):
    """Quick mode reads and writes the notebook without nbformat (read_v4, new_output): what it writes must
    still be a valid notebook, and a display nbformat's schema refuses keeps only its text/plain."""
    v4 = nbformat.v4
    code, _, _, executed = run_quick(tmp_path, [v4.new_code_cell(
        "from IPython.display import display\n"
        "display({'application/json': {'a': object()}, 'text/plain': 'odd json'}, raw=True)\n"
        "display({'image/png': b'not a string', 'text/plain': 'odd png'}, raw=True)\n"
        "display({'text/html': ['<i>', 'x</i>'], 'text/plain': 'fine'}, raw=True)\n"
        "print('done')")])
    assert code == 0
    nbformat.validate(executed)
    outputs = executed.cells[0].outputs
    assert [dict(o.data) for o in outputs[:3]] == [{"text/plain": "odd json"}, {"text/plain": "odd png"},
                                                   {"text/html": "<i>x</i>", "text/plain": "fine"}]
    assert outputs[3].text == "done\n"


def test_a_notebook_of_an_older_format_is_read_by_nbformat(tmp_path):
    """read_v4 takes version-4 notebooks only; a version-3 notebook is converted by nbformat as before."""
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    path = tmp_path / "nb.ipynb"
    v3 = nbformat.v3
    nb = v3.new_notebook(worksheets=[v3.new_worksheet(cells=[v3.new_code_cell(input="print(6 * 7)")])])
    path.write_text(nbformat.v3.writes_json(nb))
    env = {**os.environ, "HARNESS_EVIDENCE": str(evidence), "HARNESS_QUICK": "1", "PYTHONPATH": str(PROBE),
           "HARNESS_WORKSPACE": str(tmp_path), "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, str(PROBE / "run_notebook.py"), str(path)], env=env, cwd=tmp_path,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    executed = nbformat.read(evidence / "executed.ipynb", 4)
    nbformat.validate(executed)
    assert executed.cells[0].outputs[0].text == "42\n"


def test_new_output_takes_json_data_under_the_mime_types_nbformat_takes_it():
    """new_output checks a display as nbformat's schema does: JSON data under a mime type the schema's
    pattern matches (searched as jsonschema searches it: `$` also before a final newline), text elsewhere.
    A mime type with a newline inside once let JSON data through, and the executed notebook no longer validated."""
    sys.path.insert(0, str(PROBE))
    try:
        import run_notebook
    finally:
        sys.path.remove(str(PROBE))
    for mime in ("application/json", "application/vnd.a+json", "application/a\nb+json", "application/x+json\n",
                 "application/json\n", "text/plain", "application/jsonx"):
        for value in ({"a": 1}, "text", ["a\n", "b"]):
            try:
                nbformat.v4.new_output("display_data", data={mime: value})
                expected = True
            except Exception:
                expected = False
            try:
                run_notebook.new_output("display_data", data={mime: value})
                made = True
            except ValueError:
                made = False
            assert made == expected, (mime, value)
