"""A notebook whose cells and outputs carry every kind of script, request and markup trick a student
could plant in the executed notebook that the report renders."""

from __future__ import annotations

import nbformat

PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def planted_notebook(url: str = "http://127.0.0.1:9") -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["title"] = f"</title><script>pwned=1</script>"
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nb.cells = [
        nbformat.v4.new_markdown_cell(f'# Heading\n\n![x]({url}/md.png) <img src="{url}/md-img.png">'
                                      f'<script>pwned=3</script><a href="javascript:pwned=4">link</a>'),
        nbformat.v4.new_code_cell("print('hello')", execution_count=1, outputs=[
            nbformat.v4.new_output("stream", name="stdout", text=f"<script>pwned=5</script>"),
            nbformat.v4.new_output("display_data", data={
                "text/html": f'<b>bold</b><script>pwned=6</script><img src="{url}/html.png" onerror="pwned=7">'
                             f'<iframe src="{url}/frame"></iframe><meta http-equiv="refresh" content="0;url={url}/r">'
                             f'<style>body {{ background: url({url}/css.png) }}</style>',
                "application/javascript": f"pwned=8; fetch('{url}/js')",
                "text/vnd.mermaid": f"</pre><script>pwned=9</script>",
                "text/latex": "<script>pwned=10</script>",
                "text/plain": "plain"}),
            nbformat.v4.new_output("display_data", data={"image/png": PNG},
                                   metadata={"filenames": {"image/png": f"{url}/file.png"},
                                             "image/png": {"width": '1 onerror="pwned=11"'}}),
            nbformat.v4.new_output("display_data", data={"image/png": f'x" onerror="pwned=12'}),
            nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo="}),  # base64, not an image
            nbformat.v4.new_output("display_data", data={
                "image/svg+xml": f'<svg xmlns="http://www.w3.org/2000/svg"><script>pwned=13</script>'
                                 f'<image href="{url}/svg.png"/></svg>'}),
        ]),
        nbformat.v4.new_raw_cell(f"<script>pwned=14</script>", metadata={"raw_mimetype": "text/html"}),
    ]
    return nb
