"""Executes a student's notebook inside the sandbox: with nbclient and a Jupyter kernel in a full
run, in this interpreter in quick mode (`run_here`: an IPython shell without a kernel, a second or
two less start-up for a check that lasts a few seconds).

Imports nothing from the `harness` package. The cells run with the probe loaded and a pre-run
hook that maps cells to executions; this driver writes `driver.jsonl` (which cell ran as which
execution, where it stopped) next to the probe's events. Exit codes as run_module.
"""
import asyncio
import json
import os
import re
import sys
import tempfile
import time

FINISH = "import harness_probe as _hp\n_hp.finish()"
ATTACH = "import harness_probe as _hp; _hp.attach_ipython(); _hp.attach_habits()"
EXECUTED = "executed.ipynb"


def keep_executed(nb):
    """The notebook with its outputs so far, for the report (`executed.ipynb`; written after each
    cell, so a run cut short still leaves what it did). Never stops the run. A notebook read by
    `read_v4` is written as nbformat writes it, without nbformat's import (the host validates what
    it reads back)."""
    path = os.path.join(os.environ["HARNESS_EVIDENCE"], EXECUTED)
    try:
        with open(path + ".tmp", "w", encoding="utf-8") as out:
            if isinstance(nb, Node):
                out.write(json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n")
            else:
                import nbformat
                nbformat.write(nb, out)
        os.replace(path + ".tmp", path)
    except Exception:
        pass


class Node(dict):
    """A notebook, cell or output read or made without nbformat (quick mode): a dict whose keys read
    as attributes, as nbformat's NotebookNode."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key, value):
        self[key] = value


def _node(value):
    if isinstance(value, dict):
        return Node((key, _node(item)) for key, item in value.items())
    if isinstance(value, list):
        return [_node(item) for item in value]
    return value


def read_v4(path):
    """Quick mode: a version-4 notebook read with `json` (the harness validated this very file with
    nbformat before the run; importing nbformat and compiling its schema here cost 0.2 s of every
    quick run), cell sources joined as nbformat joins them. None for any other format: nbformat then
    reads and converts it."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("nbformat") != 4 or not isinstance(data.get("cells"), list) \
            or not all(isinstance(cell, dict) for cell in data["cells"]):
        return None
    nb = _node(data)
    for cell in nb.cells:
        if isinstance(cell.get("source"), list):
            cell["source"] = "".join(str(line) for line in cell["source"])
        if not isinstance(cell.get("source"), str) or not isinstance(cell.get("metadata", {}), dict) \
                or not isinstance(cell.get("cell_type"), str):
            return None
        cell.setdefault("metadata", Node())
    return nb


JSON_MIME = r"^application/(.*\+)?json$"  # the schema's pattern for JSON data, searched as jsonschema does


def _json_mime(mime):
    return re.search(JSON_MIME, mime) is not None


def _lines(value):
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(line, str) for line in value))


def new_output(kind, **fields):
    """An output as nbformat.v4.new_output makes it, checked as its schema checks it (ValueError when it
    does not hold: a mime bundle of strings, JSON for JSON types, a metadata object, an error's strings)."""
    output = Node(output_type=kind, **fields)
    if kind == "stream":
        ok = isinstance(fields.get("name"), str) and isinstance(fields.get("text"), str)
    elif kind in ("display_data", "execute_result"):
        data, metadata = fields.get("data"), fields.get("metadata", {})
        output.setdefault("metadata", Node())
        ok = isinstance(data, dict) and isinstance(metadata, dict) \
            and all(isinstance(mime, str) and (_json_mime(mime) or _lines(value)) for mime, value in data.items())
        if kind == "execute_result":
            ok = ok and (fields.get("execution_count") is None or isinstance(fields["execution_count"], int))
            output.setdefault("execution_count", None)
        if ok:
            try:
                json.dumps([data, metadata])
            except (TypeError, ValueError):
                ok = False
    elif kind == "error":
        ok = isinstance(fields.get("ename"), str) and isinstance(fields.get("evalue"), str) \
            and isinstance(fields.get("traceback"), list) and _lines(fields["traceback"])
    else:
        ok = False
    if not ok:
        raise ValueError(f"not a valid {kind} output")
    return output


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


def code_cells(nb):
    """The notebook's code cells that hold code, as (index, cell), each announced (`start` once, then `cell`)
    before it runs: the one cell walk of both drivers (a kernel in full mode, this interpreter in quick mode)."""
    emit("start", cells=len(nb.cells))
    run = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        run += 1
        emit("cell", index=index, run=run)
        yield index, cell


async def run(path):
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, DeadKernelError
    nb = nbformat.read(path, as_version=4)
    os.environ["JUPYTER_PATH"] = kernel_spec_dir()
    os.environ["IPYTHONDIR"] = tempfile.mkdtemp(prefix="ipython-")
    client = NotebookClient(nb, kernel_name="harness", timeout=None, allow_errors=False,
                            shutdown_kernel="immediate",
                            resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}})
    code = 0
    async with client.async_setup_kernel():
        for index, cell in code_cells(nb):
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


MAX_CAPTURED = 32 * 2**20  # characters of output kept from one quick run; the rest is cut


class Outputs:
    """The outputs of the running cell, collected as nbclient collects a kernel's messages. Stream
    text is gathered in pieces and joined once (a cell may print a million lines)."""

    def __init__(self):
        self.cell, self.size, self.cut = None, 0, False
        self._name, self._pieces = None, []

    def start(self, cell):
        self.cell, self._name, self._pieces = cell, None, []

    def finish(self):
        self._flush()
        self.cell = None

    def _flush(self):
        if self._pieces and self.cell is not None:
            self.cell.outputs.append(new_output("stream", name=self._name, text="".join(self._pieces)))
        self._name, self._pieces = None, []

    def _room(self, size):
        if self.cell is None or self.cut:
            return False
        self.size += size
        if self.size > MAX_CAPTURED:
            self.cut = True
            self._flush()
            self.cell.outputs.append(new_output(
                "stream", name="stderr", text="\n[output cut: the run printed more than the grader keeps]\n"))
            return False
        return True

    def stream(self, name, text):
        if not text or not self._room(len(text)):
            return
        if name != self._name:
            self._flush()
            self._name = name
        self._pieces.append(text)

    def add(self, kind, **fields):
        data = fields.get("data")
        if data is not None:
            fields["data"] = {str(k): v for k, v in data.items()}
        if not self._room(len(str(fields)[:MAX_CAPTURED])):
            return
        self._flush()
        try:
            output = new_output(kind, **fields)
        except Exception:  # data nbformat does not accept: its plain text only
            if data is None or not isinstance(data.get("text/plain"), str):
                return
            output = new_output(kind, **{**fields, "data": {"text/plain": data["text/plain"]},
                                                     "metadata": {}})
        self.cell.outputs.append(output)

    def clear(self):
        if self.cell is not None:
            self._name, self._pieces = None, []
            self.cell.outputs = []


class _Stream:
    """sys.stdout / sys.stderr while cells run: text goes to the cell's outputs (as in a kernel)."""

    encoding, errors = "utf-8", "strict"

    def __init__(self, outputs, name, original):
        self._outputs, self.name, self._original = outputs, name, original

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self._outputs.stream(self.name, text)
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        pass

    def isatty(self):
        return False

    def readable(self):
        return False

    def writable(self):
        return True

    def fileno(self):
        return self._original.fileno()


def _shell(outputs):
    from IPython.core.compilerop import CachingCompiler, code_name
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets import Type

    class Hook(DisplayHook):
        def write_output_prompt(self):
            pass

        def write_format_data(self, format_dict, md_dict=None):
            outputs.add("execute_result", data=format_dict, metadata=md_dict or {},
                        execution_count=self.prompt_count)

        def finish_displayhook(self):
            pass

    class Publisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
            if not update:  # an update of an earlier display (display_id) is not shown twice
                outputs.add("display_data", data=data, metadata=metadata or {})

        def clear_output(self, wait=False):
            outputs.clear()

    class Compiler(CachingCompiler):
        """Names a cell's code by its text as written and nothing else (as ipykernel does: the
        execution count is not part of it), the name the probe's pre-run hook computes, so that
        errors and findings point at the cell and line."""

        def get_code_name(self, raw_code, transformed_code, number):
            return code_name(raw_code if raw_code is not None else transformed_code, 0)

    class Shell(InteractiveShell):
        compiler_class = Type(Compiler)
        displayhook_class = Type(Hook)
        display_pub_class = Type(Publisher)

        def enable_gui(self, gui=None):
            """`%matplotlib inline` (and any GUI): no event loop to start here, as in a kernel
            without a display; figures are shown by the inline backend's display calls."""

        def _showtraceback(self, etype, evalue, stb):
            try:
                value = str(evalue)
            except Exception:
                value = "?"
            outputs.add("error", ename=getattr(etype, "__name__", str(etype)), evalue=value,
                        traceback=[str(line) for line in stb])

    from traitlets.config import Config
    return Shell.instance(config=Config({"HistoryManager": {"enabled": False}}))


def _no_input(*args, **kwargs):
    from IPython.core.error import StdinNotImplementedError
    raise StdinNotImplementedError("raw_input was called, but this frontend does not support input requests.")


def _text(value, limit):
    try:
        return str(value)[:limit]
    except Exception:
        return type(value).__name__


def run_here(path):
    """Quick mode: the cells run in this interpreter, in an IPython shell (the transformations of
    `%` magics and `!` escapes, the hooks, `display`, the execution counts of a kernel), without a
    Jupyter kernel, its messaging or a second interpreter. What the driver records and keeps is the
    same as with a kernel: driver.jsonl, executed.ipynb after each cell, the exit code."""
    nb = read_v4(path)
    if nb is None:
        import nbformat
        nb = nbformat.read(path, as_version=4)
    folder = os.path.dirname(os.path.abspath(path))
    os.environ["IPYTHONDIR"] = tempfile.mkdtemp(prefix="ipython-")
    os.environ["HARNESS_PROBE"] = "1"  # as in the kernel's environment: the student's subprocesses get it
    os.chdir(folder)
    sys.path[0] = folder  # the kernel's first path entry is the notebook's folder
    import builtins
    import harness_probe
    harness_probe.install()
    outputs = Outputs()
    real_out, real_err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Stream(outputs, "stdout", real_out), _Stream(outputs, "stderr", real_err)
    shell = _shell(outputs)
    builtins.input = _no_input

    def quick_stop(self, etype, value, tb, tb_offset=None):  # no formatted traceback through Keras
        stb = ["QuickStop: grade --quick stops at the first fit"]
        outputs.add("error", ename="QuickStop", evalue="", traceback=stb)  # IPython shows nothing itself here
        return stb

    shell.set_custom_exc((harness_probe.QuickStop,), quick_stop)
    shell.run_cell(ATTACH, store_history=False)
    code = 0
    for index, cell in code_cells(nb):
        tags = cell.metadata.get("tags", [])
        if "skip-execution" in tags:  # as nbclient
            continue
        cell.outputs, cell.execution_count = [], shell.execution_count
        outputs.start(cell)
        try:
            result = shell.run_cell(cell.source, store_history=True)
        finally:
            outputs.finish()
            keep_executed(nb)
        error = result.error_before_exec or result.error_in_exec
        if error is None or "raises-exception" in tags:
            continue
        if isinstance(error, harness_probe.QuickStop):
            emit("quick_stop", index=index)
            code = 5
        else:
            emit("cell_error", index=index, ename=type(error).__name__, evalue=_text(error, 2000))
            code = 1
        break
    sys.stdout, sys.stderr = real_out, real_err
    try:
        harness_probe.finish()
    except BaseException as exc:
        emit("finish_failed", message=_text(exc, 500))
    emit("end", code=code)
    return code


def main():
    if os.environ.get("HARNESS_QUICK") == "1":
        code = run_here(sys.argv[1])
    else:
        code = asyncio.run(run(sys.argv[1]))
    sys.stdout.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
