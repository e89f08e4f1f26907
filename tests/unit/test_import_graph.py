"""The rule of trust as an import graph: checks and trusted evaluation never import the probe or
student code; the probe imports nothing from the harness package."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "harness"


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_probe_imports_nothing_from_the_harness():
    for path in (PACKAGE / "probe").glob("*.py"):
        bad = {m for m in imports(path) if m == "harness" or m.startswith("harness.")}
        assert not bad, f"{path.name} imports {bad}"


def test_evaluator_imports_nothing_from_the_harness():
    for path in (PACKAGE / "evaluator").glob("*.py"):
        assert not {m for m in imports(path) if m.startswith("harness")}, path


def test_trusted_side_never_imports_the_probe_or_keras():
    trusted = [PACKAGE / "evaluate.py", PACKAGE / "fingerprints.py", PACKAGE / "static.py",
               PACKAGE / "evidence.py", PACKAGE / "record.py", *(PACKAGE / "checks").glob("*.py")]
    for path in trusted:
        names = imports(path)
        assert not {m for m in names if "probe" in m}, f"{path.name} imports the probe"
        assert not {m for m in names if m.split(".")[0] in ("keras", "tensorflow", "tf_keras")}, path.name
