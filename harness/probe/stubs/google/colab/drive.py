"""`drive.mount(...)` does nothing here: the grader serves the data itself (paths under
/content/drive that match the served layout are mapped to it before the run)."""


def _note(detail):
    try:
        import harness_probe
        harness_probe.note("colab", detail)
    except BaseException:
        pass


def mount(mountpoint="/content/drive", force_remount=False, timeout_ms=120000, readonly=False):
    _note(f"drive.mount({mountpoint!r})")


def flush_and_unmount(timeout_ms=24 * 60 * 60 * 1000):
    _note("drive.flush_and_unmount()")
