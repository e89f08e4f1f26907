"""Where a class run's jobs run: a small protocol plus a registry; built-ins register like plugins."""

from harness.executors.base import Executor, ExecutorSettings, get, names, register

from harness.executors import local as _local  # noqa: F401  (registers "local")
from harness.executors import raycluster as _raycluster  # noqa: F401  (registers "ray"; imports ray only when used)

__all__ = ["Executor", "ExecutorSettings", "get", "names", "register"]
