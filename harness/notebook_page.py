"""The executed notebook as one self-contained page, rendered by the harness's own template.

The notebook is student-controlled: `webreport.read_notebook` reads it size-limited and validated,
`webreport._clean_notebook` reduces it to plain outputs of known types, and this module turns what
is left into a page under the reports' Content-Security-Policy (`default-src 'none'`, no script):
text is escaped by Jinja2's autoescape, HTML and Markdown outputs and Markdown cells go through the
strict sanitiser (`webreport.clean_html`), images are data: URIs that Pillow decoded, SVG is shown
as an image (a data: URI, so its scripts and references never run or load), terminal colour codes
are dropped. What nbconvert did here, in a few milliseconds a page instead of a tenth of a second
(and a second of imports on the first).
"""

from __future__ import annotations

import base64
import re
from typing import Any

from markupsafe import Markup

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
MAX_HTML_TAGS = 3000  # `<` in one HTML output or Markdown cell: the sanitiser's parser is quadratic in the nesting
MAX_PAGE_HTML_TAGS = 60000  # and in all of one page (a few seconds at worst); past either, plain text is shown
PRIORITY = ("text/html", "text/markdown", "image/svg+xml", "text/latex", "image/png", "image/jpeg", "text/plain")
_MARKDOWN = None


def plain(text: str) -> str:
    """Terminal text without its colour and cursor codes (tracebacks, progress bars)."""
    return ANSI.sub("", text)


class Budget:
    """How much HTML one page may still hand to the sanitiser (its parser takes time quadratic in the
    nesting: `<div>` 20,000 times, 100 kB, took 30 s)."""

    def __init__(self, tags: int = MAX_PAGE_HTML_TAGS):
        self.left = tags

    def clean(self, html: str) -> Markup | None:
        """`html` sanitised, or None when it is over the bounds (the caller shows plain text)."""
        from harness.webreport import clean_html
        tags = html.count("<")
        if tags > MAX_HTML_TAGS or tags > self.left:
            return None
        self.left -= tags
        return Markup(clean_html(html))


def markdown(text: str, budget: Budget | None = None) -> Markup:
    """Markdown (raw HTML allowed by the syntax) to HTML, then through the strict sanitiser; escaped
    source text when the HTML is over the budget."""
    global _MARKDOWN
    if _MARKDOWN is None:
        import mistune
        _MARKDOWN = mistune.create_markdown(escape=False, plugins=["strikethrough", "table"])
    cleaned = (budget or Budget()).clean(_MARKDOWN(text))
    return cleaned if cleaned is not None else Markup("<pre>%s</pre>") % text


def _output(output: dict, budget: Budget) -> dict[str, Any] | None:
    kind = output.get("output_type")
    if kind == "stream":
        return {"kind": "stream", "name": output.get("name"), "text": plain(str(output.get("text", "")))}
    if kind == "error":
        lines = [plain(str(line)) for line in output.get("traceback") or []]
        text = "\n".join(lines) or f"{output.get('ename', '')}: {output.get('evalue', '')}"
        return {"kind": "error", "text": text}
    data = output.get("data") or {}
    prompt = output.get("execution_count") if kind == "execute_result" else None
    for mime in PRIORITY:
        value = data.get(mime)
        if not isinstance(value, str):
            continue
        if mime == "text/html":
            html = budget.clean(value)
            if html is None:
                continue  # too much HTML to sanitise: the output's next type (its plain text)
            return {"kind": "html", "html": html, "prompt": prompt}
        if mime == "text/markdown":
            return {"kind": "html", "html": markdown(value, budget), "prompt": prompt}
        if mime == "image/svg+xml":
            uri = "data:image/svg+xml;base64," + base64.b64encode(value.encode("utf-8")).decode("ascii")
            return {"kind": "image", "uri": uri, "prompt": prompt}
        if mime in ("image/png", "image/jpeg"):  # base64 that Pillow decoded (webreport._clean_notebook)
            return {"kind": "image", "uri": f"data:{mime};base64," + "".join(value.split()), "prompt": prompt}
        return {"kind": "text", "text": plain(value), "prompt": prompt}
    return None


def cells(nb) -> list[dict[str, Any]]:
    """The cells of a cleaned notebook as the template shows them."""
    shown, budget = [], Budget()
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            shown.append({"kind": "markdown", "id": cell.id, "html": markdown(str(cell.source), budget)})
        elif cell.cell_type == "code":
            outputs = [o for o in (_output(x, budget) for x in cell.get("outputs", [])) if o is not None]
            shown.append({"kind": "code", "id": cell.id, "count": cell.get("execution_count"),
                          "source": str(cell.source), "outputs": outputs})
    return shown


def render(nb, heading: str, back: str) -> str:
    """The page of a notebook that `webreport._clean_notebook` has cleaned."""
    from harness.webreport import env
    return env().get_template("notebook.html.j2").render(heading=heading, back=back, cells=cells(nb))
