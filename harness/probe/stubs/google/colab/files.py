"""`files.upload()` and `files.download()` do nothing here (no browser): upload returns no files."""


def _note(detail):
    try:
        import harness_probe
        harness_probe.note("colab", detail)
    except BaseException:
        pass


def upload(*args, **kwargs):
    _note("files.upload()")
    return {}


def download(filename, *args, **kwargs):
    _note(f"files.download({filename!r})")
