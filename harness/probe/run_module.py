"""Runs a student's module as __main__ with the probe loaded (inside the sandbox).

Imports nothing from the `harness` package. Exit codes: 0 finished, 1 the submission raised,
5 stopped at the first fit in quick mode.
"""
import os
import runpy
import sys


def main():
    entry = sys.argv[1]
    import harness_probe
    harness_probe.install()
    sys.argv = [entry]
    sys.path.insert(0, os.path.dirname(os.path.abspath(entry)))
    code = 0
    try:
        runpy.run_path(entry, run_name="__main__")
    except harness_probe.QuickStop:
        code = 5
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if code != 0:
            harness_probe.record_exception(exc)
    except BaseException as exc:
        harness_probe.record_exception(exc)
        import traceback
        traceback.print_exc()
        code = 1
    harness_probe.finish()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
