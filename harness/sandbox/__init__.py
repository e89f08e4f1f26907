"""Where untrusted code runs. A small protocol plus a registry; built-ins register like plugins."""

from harness.sandbox.base import Layout, Limits, Mount, Sandbox, SandboxRequest, SandboxResult, get, names, register

from harness.sandbox import bwrap as _bwrap  # noqa: F401  (registers "bwrap")
from harness.sandbox import process as _process  # noqa: F401  (registers "process")
from harness.sandbox import docker as _docker  # noqa: F401  (registers "docker"; the SDK is imported when used)

__all__ = ["Layout", "Limits", "Mount", "Sandbox", "SandboxRequest", "SandboxResult", "get", "names", "register"]
