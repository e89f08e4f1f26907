"""The executed notebook's page (harness/notebook_page.py): what a submission printed cannot stall the report."""

import nbformat

from harness import notebook_page, webreport


def _page(*cells):
    nb = nbformat.v4.new_notebook(cells=list(cells))
    return webreport.render_notebook(nb, "alice", "back.html")


def _html_output(html, plain):
    cell = nbformat.v4.new_code_cell("show()")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": html, "text/plain": plain})]
    return cell


def test_deeply_nested_html_is_not_handed_to_the_sanitiser():
    """The HTML parser under the sanitiser takes time quadratic in the nesting: `<div>` 20,000 times (100 kB)
    took 30 s, and a 20 MB notebook holds hundreds of those. Past a bound the output's plain text is shown."""
    page = _page(_html_output("<div>" * (notebook_page.MAX_HTML_TAGS + 1), "the plain text"),
                 nbformat.v4.new_markdown_cell("<b>" * (notebook_page.MAX_HTML_TAGS + 1)),
                 _html_output("<table><tr><td>kept</td></tr></table>", "not this"))
    assert "the plain text" in page and "<td>kept</td>" in page and "not this" not in page
    assert "<div><div>" not in page and "&lt;b&gt;&lt;b&gt;" in page


def test_the_page_as_a_whole_has_a_bound_on_the_html_it_sanitises():
    each = notebook_page.MAX_HTML_TAGS // 2
    count = notebook_page.MAX_PAGE_HTML_TAGS // each + 2
    page = _page(*[_html_output("<span>x</span>" * (each // 2), f"plain {i}.") for i in range(count)])
    assert "plain 0." not in page and f"plain {count - 1}." in page
