"""Executes a student's notebook with nbclient; the kernel runs here, inside the sandbox.

Imports nothing from the `harness` package. The kernel starts with the probe loaded and a
pre-run hook that maps cells to executions; this driver writes `driver.jsonl` (which cell ran
as which execution, where it stopped) next to the probe's events. Exit codes as run_module.
"""
import asyncio
import json
import os
import sys
import tempfile
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, DeadKernelError

FINISH = "import harness_probe as _hp\n_hp.finish()"
ATTACH = "import harness_probe as _hp; _hp.attach_ipython(); _hp.attach_habits()"
EXECUTED = "executed.ipynb"


def keep_executed(nb):
    """The notebook with its outputs so far, for the report (`executed.ipynb`; written after each
    cell, so a run cut short still leaves what it did). Never stops the run."""
    path = os.path.join(os.environ["HARNESS_EVIDENCE"], EXECUTED)
    try:
        with open(path + ".tmp", "w", encoding="utf-8") as out:
            nbformat.write(nb, out)
        os.replace(path + ".tmp", path)
    except Exception:
        pass


def emit(kind, **data):
    path = os.path.join(os.environ["HARNESS_EVIDENCE"], "driver.jsonl")
    data.update(kind=kind, time=round(time.time(), 3))
    with open(path, "a") as out:
        out.write(json.dumps(data) + "\n")


def kernel_spec_dir():
    root = tempfile.mkdtemp(prefix="harness-kernels-")
    spec = os.path.join(root, "kernels", "harness")
    os.makedirs(spec)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
            "--IPKernelApp.exec_lines=[%r]" % ATTACH, "--HistoryManager.enabled=False"]
    with open(os.path.join(spec, "kernel.json"), "w") as out:
        json.dump({"argv": argv, "display_name": "harness", "language": "python",
                   "env": {"HARNESS_PROBE": "1"}}, out)
    return root


async def run(path):
    nb = nbformat.read(path, as_version=4)
    os.environ["JUPYTER_PATH"] = kernel_spec_dir()
    os.environ["IPYTHONDIR"] = tempfile.mkdtemp(prefix="ipython-")
    client = NotebookClient(nb, kernel_name="harness", timeout=None, allow_errors=False,
                            shutdown_kernel="immediate",
                            resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}})
    code = 0
    async with client.async_setup_kernel():
        cells = list(enumerate(nb.cells))
        emit("start", cells=len(cells))
        run = 0
        for index, cell in cells:
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            run += 1
            emit("cell", index=index, run=run)
            try:
                await client.async_execute_cell(cell, index)
            except CellExecutionError as exc:
                if exc.ename == "QuickStop":
                    emit("quick_stop", index=index)
                    code = 5
                else:
                    emit("cell_error", index=index, ename=exc.ename, evalue=str(exc.evalue)[:2000])
                    code = 1
                break
            except DeadKernelError as exc:
                emit("kernel_died", index=index, message=str(exc)[:500])
                return 1
            finally:
                keep_executed(nb)
        nb.cells.append(nbformat.v4.new_code_cell(FINISH))
        try:
            await client.async_execute_cell(nb.cells[-1], len(nb.cells) - 1)
        except (CellExecutionError, DeadKernelError) as exc:
            emit("finish_failed", message=str(exc)[:500])
        emit("end", code=code)
    return code


def main():
    code = asyncio.run(run(sys.argv[1]))
    sys.stdout.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
