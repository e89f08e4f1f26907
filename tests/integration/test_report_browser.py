"""The HTML reports in headless Debian chromium: no console error, every image decodes, no request
leaves the file, and nothing planted by a student runs or reaches a server.

The planted-content tests render records built here (seconds); the real-run test grades the sample
student alice (quick) and one small notebook (full), renders the run and keeps screenshots of a
student view and an instructor view (tmp dir, and reports/screenshots/, which git ignores)."""

from __future__ import annotations

import http.server
import json
import shutil
import sys
import threading
from pathlib import Path

import nbformat
import pytest

from chromium import CHROMIUM, Chromium
from conftest import FIXTURES
from planted import planted_notebook

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))  # sample_run: records built by hand

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                 "(scripts/install-system.sh installs it: make install)")]

PROBE = """JSON.stringify({
  pwned: typeof window.pwned === "undefined" ? null : String(window.pwned),
  scripts: document.scripts.length,
  frames: document.querySelectorAll("iframe, object, embed, frame").length,
  remote: Array.from(document.querySelectorAll("[src], link[href], [srcset], [poster]"))
               .map(e => e.getAttribute("src") || e.getAttribute("href") || e.getAttribute("srcset") || "")
               .filter(u => !u.startsWith("data:")),
  title: document.title
})"""


@pytest.fixture
def browser(tmp_path):
    chrome = Chromium(tmp_path)
    yield chrome
    chrome.close()


@pytest.fixture
def trap():
    """A web server on 127.0.0.1 that records every request: planted content points at it."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"pwned=1")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


def check_page(browser: Chromium, path: Path, screenshot: Path | None = None) -> dict:
    page = browser.open(path, screenshot=screenshot, probe=PROBE, settle=0.3)
    dom = json.loads(page.value)
    assert page.console_errors == [], (path, page.log)
    assert page.foreign_requests() == [], (path, page.requests)
    assert all(image["decoded"] and image["width"] > 0 for image in page.images), (path, page.images)
    assert dom["pwned"] is None and dom["scripts"] == 0 and dom["frames"] == 0 and dom["remote"] == [], (path, dom)
    return {"page": page, "dom": dom}


def test_planted_scripts_and_requests_neither_run_nor_leave(tmp_path, browser, trap, assignments):
    from harness import record, webreport
    from sample_run import entries, write_run
    url, hits = trap
    planted = f'<script>window.pwned=1;fetch("{url}/script")</script><img src="{url}/img" onerror="pwned=2">'
    run = write_run(tmp_path / "run")
    path = run / "grace" / "ox.json"
    rec = record.load(path)
    rec = rec.model_copy(update={
        "summary": planted, "student": planted, "evidence_problems": [planted],
        "findings": [f.model_copy(update={"message": planted}) for f in rec.findings],
        "checks": [c.model_copy(update={"message": planted}) for c in rec.checks],
        "model": rec.model.model_copy(update={"layers": [l.model_copy(update={"name": planted})
                                                         for l in rec.model.layers]})})
    record.save(rec, path)
    evidence = run / "grace" / "ox.evidence"
    (evidence / "code").mkdir(parents=True, exist_ok=True)
    nbformat.write(planted_notebook(url), evidence / "code" / "ox.ipynb")
    nbformat.write(planted_notebook(url), evidence / "executed.ipynb")
    written = webreport.write_run(run, assignments, data_root=tmp_path / "no-data")
    assert run / "html" / "instructor" / "grace" / "ox.submission.html" in written
    for page in written:
        check_page(browser, page)
    assert hits == [], f"a planted request reached the server: {hits}"


def test_the_policy_alone_stops_a_script_and_a_request_the_sanitiser_missed(tmp_path, browser, trap):
    """Defence in depth: raw markup pushed past every escape into a report still neither runs nor
    reaches the server, because of the page's Content-Security-Policy."""
    from harness import webreport
    from harness.webreport import Inputs, render_record
    from sample_run import entries
    url, hits = trap
    page = render_record(Inputs(rec=entries()[0].record, title="t"), "student")
    raw = (f'<script>window.pwned=1</script><script src="{url}/external.js"></script>'
           f'<img src="{url}/img.png"><link rel="stylesheet" href="{url}/style.css">'
           f'<iframe src="{url}/frame"></iframe><div style="background: url({url}/bg.png)">x</div>')
    path = tmp_path / "injected.html"
    path.write_text(page.replace("<body>", "<body>" + raw, 1))
    result = browser.open(path, probe="String(window.pwned)", settle=0.5)
    assert result.value == "undefined"
    assert hits == [], f"the policy let a request through: {hits}"
    assert webreport.CSP in page
    attempted = {rid: u for rid, u in result.request_ids.items() if u.startswith("http")}
    assert len(attempted) >= 4, result.requests  # the script, the stylesheet, the image, the background
    assert all(result.failed.get(rid) in ("csp", "net::ERR_BLOCKED_BY_CSP") for rid in attempted), (
        attempted, result.failed)
    refused = [line for line in result.log if "Content Security Policy" in line]
    assert any("inline script" in line for line in refused), result.log


@pytest.mark.integration
@pytest.mark.slow
def test_the_sample_class_renders_in_chromium(grade, student, data_root, browser, tmp_path, root):
    from harness.cli import harness_main
    # alice, quick, every assignment; and one small notebook graded in full (curves, confusion, images)
    code, quick = grade("--quick", str(root / "submissions" / "alice"))
    assert code == 0 and len(quick) == 6, quick
    text = (FIXTURES / "evaluation" / "trains_briefly.py").read_text().split('"""', 2)[2]
    head, tail = text.split("model = models.Sequential")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Fashion-MNIST, briefly"),
                                         nbformat.v4.new_code_cell(head.strip()),
                                         nbformat.v4.new_code_cell("model = models.Sequential" + tail.strip())])
    folder = student("nora", {"fashion-mnist-cnn.ipynb": nbformat.writes(nb)})
    code, full = grade("--data-root", str(data_root), str(folder))
    rec = full[("nora", "fashion-mnist-cnn")]
    assert rec["status"] == "graded" and rec["metrics"]["misclassified"], rec["summary"]

    out = tmp_path / "reports"
    assert harness_main(["report", str(out), "--data-root", str(data_root),
                         "--assignments", str(root / "assignments")]) == 0
    html = out / "html"
    pages = sorted(html.rglob("*.html"))
    assert len(pages) == 1 + 7 * 3  # the index; per job an instructor view, a student view, the submission
    assert (out / "alice" / "ox.evidence" / "executed.ipynb").is_file()
    shots = tmp_path / "screenshots"
    seen = {}
    for page in pages:
        name = page.relative_to(html).as_posix()
        keep = name in ("index.html", "student/nora/fashion-mnist-cnn.html", "instructor/nora/fashion-mnist-cnn.html",
                        "instructor/nora/fashion-mnist-cnn.submission.html")
        seen[name] = check_page(browser, page, shots / name.replace("/", "--").replace(".html", ".png") if keep else None)

    instructor = seen["instructor/nora/fashion-mnist-cnn.html"]["page"]
    assert len(instructor.images) >= 1 + len(rec["metrics"]["misclassified"][:48])  # curves + thumbnails
    assert len(seen["student/nora/fashion-mnist-cnn.html"]["page"].images) == 1   # curves only
    student_view = (html / "student" / "nora" / "fashion-mnist-cnn.html").read_text()
    instructor_view = (html / "instructor" / "nora" / "fashion-mnist-cnn.html").read_text()
    private = f"{100 * rec['metrics']['holdout_accuracy']:.2f} %"
    assert private in instructor_view and private not in student_view
    assert rec["metrics"]["misclassified"][0] in instructor_view and rec["metrics"]["misclassified"][0] not in student_view
    for shot in shots.glob("*.png"):
        assert shot.stat().st_size > 10_000
    keep = root / "reports" / "screenshots"
    keep.mkdir(parents=True, exist_ok=True)
    for shot in shots.glob("*.png"):
        shutil.copyfile(shot, keep / shot.name)
