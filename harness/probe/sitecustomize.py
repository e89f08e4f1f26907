"""Loaded at interpreter start-up inside the sandbox (the probe folder is on PYTHONPATH).

Installs the probe when HARNESS_PROBE=1 and, for the legacy runtime, makes `import keras`
resolve to tf_keras before any student code runs. Never raises.
"""
import os
import sys

if os.environ.get("HARNESS_RUNTIME") == "legacy":
    try:
        import importlib.abc
        import importlib.util

        class _KerasAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
            """`keras` and `keras.*` resolve to `tf_keras` and `tf_keras.*`."""

            def find_spec(self, name, path=None, target=None):
                if name == "keras" or name.startswith("keras."):
                    return importlib.util.spec_from_loader(name, self)
                return None

            def create_module(self, spec):
                import importlib
                return importlib.import_module("tf_keras" + spec.name[len("keras"):])

            def exec_module(self, module):
                pass

        sys.meta_path.insert(0, _KerasAlias())
    except BaseException:
        pass

if os.environ.get("HARNESS_EVIDENCE"):
    # inert stand-ins for google.colab and Kaggle Learn's learntools, after every real package
    sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "stubs"))

if os.environ.get("HARNESS_PROBE") == "1":
    try:
        import harness_probe
        harness_probe.install()
    except BaseException:
        pass
