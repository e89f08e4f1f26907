"""Inert stand-in for Kaggle Learn's `learntools` inside the grading sandbox: `binder.bind(globals())`,
`from learntools.computer_vision.ex5 import *` and `q_1.check()` / `.hint()` / `.solution()` do
nothing and leave a note. Every `learntools.*` submodule is made on demand; every name in it is inert."""

import importlib.abc
import importlib.util
import sys
import types

QUESTIONS = [f"q_{i}" for i in range(1, 10)] + [f"q_{i}{s}" for i in range(1, 10) for s in "abcd"]


def _note(detail):
    try:
        import harness_probe
        harness_probe.note("learntools", detail)
    except BaseException:
        pass


class Inert:
    """Any attribute is another Inert; a call leaves a note and returns None."""

    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return Inert(f"{self._name}.{attr}")

    def __call__(self, *args, **kwargs):
        _note(f"{self._name}(...)")
        return None

    def __repr__(self):
        return f"<inert {self._name}>"


def _inert_module(module):
    module.__path__ = []
    module.__all__ = list(QUESTIONS)
    module.__getattr__ = lambda attr: (_ for _ in ()).throw(AttributeError(attr)) if attr.startswith("__") \
        else Inert(f"{module.__name__}.{attr}")


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name.startswith("learntools."):
            return importlib.util.spec_from_loader(name, self, is_package=True)
        return None

    def create_module(self, spec):
        return types.ModuleType(spec.name)

    def exec_module(self, module):
        _inert_module(module)


if not any(isinstance(f, _Finder) for f in sys.meta_path):
    sys.meta_path.append(_Finder())
