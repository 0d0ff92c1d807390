"""The trusted re-check: every test cell runs again where the student's code cannot reach it.

Inside ``nbgrader autograde`` the student's answer cells and the test cells share one
Python process, so an answer that patches ``numpy.allclose``, ``builtins`` or the test
helper can make any test pass. Here the two are split across processes:

* the **trusted process** (this module run without ``--student``) executes the setup cells
  and the test cells, hidden tests included, from the instructor's source; every
  comparison (``check_close``, ``np.allclose``, ``assert``) runs on its own pristine
  objects;
* the **student process** (``--student``, in the bubblewrap sandbox of
  ``tools/sandbox.py``, without ``lib`` unless a setup cell needs it) executes the setup
  cells and the student's answer cells, then serves calls.

The names the answer cells define appear in the trusted process as proxies: calling one
sends the arguments to the student process and brings the result back. Values cross
the boundary as *data only* (JSON: numbers, strings, lists, dicts, NumPy arrays and
torch tensors as raw bytes); anything else stays where it lives and is reached through a
proxy. The trusted side never unpickles or evaluates anything the student sends, and the
student side may only call (and read public attributes of) the objects the tests pass it.
A student process that overruns the per-cell time limit is killed, as is one that dies
(memory cap, ``os._exit``); that test cell fails with the reason and a fresh student
process serves the next one.

Mutable values keep their meaning across the boundary during a call: arrays, tensors and random
generators that cross during a call are re-synchronised with every message, so a
finite-difference routine that perturbs ``x`` in place while calling back a test's
closure, or a sampler that advances the test's generator, behaves as in one process.
When the call returns, the trusted side's arrays and tensors are restored to their
contents before it, so tests compute expected values from inputs the student never
touched. Proxies forward public attribute names only: NumPy's and torch's protocols
(``__array_interface__``, ``__torch_function__``) never reach the student's objects.
Autograd crosses too: a tensor the student computes from the test's tensors that need
gradients comes back as the output of an autograd function whose backward asks the
student's process for the gradients (``torch.autograd.backward`` there).
"""
from __future__ import annotations

import base64
import json
import os
import select
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

SAFE_EXCEPTIONS = {e.__name__: e for e in (
    ArithmeticError, AssertionError, AttributeError, FloatingPointError, IndexError, PermissionError,
    KeyError, LookupError, MemoryError, NotImplementedError, OverflowError, RecursionError,
    RuntimeError, StopIteration, TypeError, ValueError, ZeroDivisionError)}


class StudentTimeout(Exception):
    """The student's process did not answer before the cell's deadline."""


class StudentDied(Exception):
    """The student's process ended (memory cap, crash, exit)."""


class RemoteError(Exception):
    """An exception of a type that is not re-created across the boundary."""


class MessageTooLarge(StudentDied):
    """The student's process sent more than ``MAX_MESSAGE_BYTES`` in one message."""


# The largest message the trusted side accepts from the student's process (the tests'
# arrays are small; a 128 MiB array exported by an answer cell is not an answer).
MAX_MESSAGE_BYTES = 64 * 2**20


# --------------------------------------------------------------------------------------
# Data across the boundary
# --------------------------------------------------------------------------------------
def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def encode(obj, endpoint: "Endpoint"):
    """A JSON value for ``obj``: data is copied, anything else becomes a reference."""
    if obj is None or isinstance(obj, (bool, str)) or type(obj) in (int, float):
        return {"t": "v", "v": obj}
    if type(obj) is complex:
        return {"t": "complex", "v": [obj.real, obj.imag]}
    if type(obj) is bytes:
        return {"t": "bytes", "v": _b64(obj)}
    if type(obj) in (list, tuple, set, frozenset):
        return {"t": type(obj).__name__, "v": [encode(x, endpoint) for x in obj]}
    if type(obj) is dict:
        return {"t": "dict", "v": [[encode(k, endpoint), encode(v, endpoint)] for k, v in obj.items()]}
    if type(obj) in (slice, type(Ellipsis)):
        return ({"t": "ellipsis"} if obj is Ellipsis else
                {"t": "slice", "v": [encode(x, endpoint) for x in (obj.start, obj.stop, obj.step)]})
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        if isinstance(obj, numpy.ndarray):
            if obj.dtype.kind in "biufcUS":
                return {**_array_data(obj, numpy), "key": endpoint.share(obj)}
            return {"t": "ndobj", "shape": list(obj.shape),
                    "v": [encode(x, endpoint) for x in obj.ravel().tolist()]}
        if isinstance(obj, numpy.generic) and obj.dtype.kind in "biufc":
            return {"t": "nps", "dtype": obj.dtype.str, "v": _b64(obj.tobytes())}
        if isinstance(obj, numpy.dtype):
            return {"t": "ndtype", "v": obj.str}
        if isinstance(obj, numpy.random.Generator):
            return {**_npgen_data(obj), "key": endpoint.share(obj)}
    torch = sys.modules.get("torch")
    if torch is not None:
        if isinstance(obj, torch.Tensor):
            return endpoint.encode_tensor(obj)
        if isinstance(obj, torch.Generator) and obj.device.type == "cpu":
            return {**_tgen_data(obj), "key": endpoint.share(obj)}
        if isinstance(obj, torch.dtype):
            return {"t": "tdtype", "v": str(obj).removeprefix("torch.")}
        if type(obj) is torch.Size:
            return {"t": "tsize", "v": list(obj)}
    return endpoint.reference(obj)


def _array_data(array, numpy) -> dict:
    array = numpy.ascontiguousarray(array)
    return {"t": "nd", "dtype": array.dtype.str, "shape": list(array.shape),
            "v": _b64(array.tobytes())}


def _npgen_data(generator) -> dict:
    return {"t": "npgen", "bitgen": type(generator.bit_generator).__name__,
            "state": generator.bit_generator.state}


def _tgen_data(generator) -> dict:
    return {"t": "tgen", "state": _b64(generator.get_state().numpy().tobytes())}


def _tensor_data(tensor, torch) -> dict:
    needs_grad = bool(tensor.requires_grad)
    tensor = tensor.detach().cpu().contiguous()
    name = str(tensor.dtype).removeprefix("torch.")
    raw = tensor.view(torch.int16) if tensor.dtype == torch.bfloat16 else tensor
    array = raw.numpy()
    return {"t": "tensor", "dtype": name, "npdtype": array.dtype.str,
            "shape": list(tensor.shape), "grad": needs_grad,
            "v": _b64(array.tobytes())}


def decode(data, endpoint: "Endpoint"):
    """The value ``encode`` produced; references become proxies (or our own objects)."""
    tag = data["t"]
    if tag == "v":
        return data["v"]
    if tag == "complex":
        return complex(*data["v"])
    if tag == "bytes":
        return base64.b64decode(data["v"])
    if tag in ("list", "tuple", "set", "frozenset"):
        items = [decode(x, endpoint) for x in data["v"]]
        return {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}[tag](items)
    if tag == "dict":
        return {decode(k, endpoint): decode(v, endpoint) for k, v in data["v"]}
    if tag == "ellipsis":
        return Ellipsis
    if tag == "slice":
        return slice(*(decode(x, endpoint) for x in data["v"]))
    if "key" in data:
        if data["key"] in endpoint.shared:
            return endpoint.shared[data["key"]]
        value = decode_value(data, endpoint)
        if data.get("graph") is not None:
            value = endpoint.attach_graph(value, data)
        endpoint.adopt(data["key"], value)
        return value
    return decode_value(data, endpoint)


def decode_value(data, endpoint: "Endpoint"):
    """A fresh object for a keyed value (array, tensor, generator), without aliasing."""
    tag = data["t"]
    if tag == "npgen":
        import numpy
        bit_generator = getattr(numpy.random, data["bitgen"])
        if not (isinstance(bit_generator, type)
                and issubclass(bit_generator, numpy.random.BitGenerator)):
            raise ValueError(f"unknown bit generator {data['bitgen']!r}")
        generator = numpy.random.Generator(bit_generator())
        generator.bit_generator.state = data["state"]
        return generator
    if tag in ("nd", "nps", "ndtype", "ndobj"):
        import numpy
        if tag == "ndtype":
            return numpy.dtype(data["v"])
        if tag == "ndobj":
            array = numpy.empty(len(data["v"]), dtype=object)
            array[:] = [decode(x, endpoint) for x in data["v"]]
            return array.reshape(data["shape"])
        array = numpy.frombuffer(base64.b64decode(data["v"]), dtype=numpy.dtype(data["dtype"]))
        return array.reshape(data["shape"]).copy() if tag == "nd" else array[0]
    if tag in ("tensor", "tdtype", "tsize", "tgen"):
        return _decode_torch(data)
    if tag == "obj":
        return endpoint.proxy(int(data["id"]), str(data.get("repr", "")))
    if tag == "back":
        return endpoint.objects[int(data["id"])]
    raise ValueError(f"unknown tag {tag!r}")


def _decode_torch(data: dict):
    import numpy
    import torch
    if data["t"] == "tdtype":
        return getattr(torch, data["v"]) if data["v"].isidentifier() else None
    if data["t"] == "tsize":
        return torch.Size(int(x) for x in data["v"])
    if data["t"] == "tgen":
        generator = torch.Generator()
        state = numpy.frombuffer(base64.b64decode(data["state"]), dtype=numpy.uint8).copy()
        generator.set_state(torch.from_numpy(state))
        return generator
    array = numpy.frombuffer(base64.b64decode(data["v"]), dtype=numpy.dtype(data["npdtype"]))
    tensor = torch.from_numpy(array.reshape(data["shape"]).copy())
    if data["dtype"] == "bfloat16":
        tensor = tensor.view(torch.bfloat16)
    if data["grad"] and tensor.is_floating_point():
        tensor.requires_grad_(True)
    return tensor


# --------------------------------------------------------------------------------------
# One end of the pipe
# --------------------------------------------------------------------------------------
class Endpoint:
    """Requests and replies as JSON lines over two file descriptors, in both directions.

    ``trusted=True`` is the test side: it lets the other side only call the objects it was
    given, or read their public attributes.
    """

    def __init__(self, read_fd: int, write_fd: int, *, trusted: bool):
        self.read_fd, self.write_fd, self.trusted = read_fd, write_fd, trusted
        self.side = "T" if trusted else "S"
        self.objects: dict[int, object] = {}
        self.buffer = bytearray()
        self.scanned = 0  # bytes of the buffer already searched for the end of a message
        self.deadline: float | None = None
        self.depth = 0
        # Arrays, tensors and generators that crossed during the current exchange, by key:
        # their contents are re-sent with every message, so that in-place changes on one
        # side (a generator that advanced, x[i] += h in a finite difference) reach the other.
        self.shared: dict[str, object] = {}
        self.keys: dict[int, str] = {}
        self.grad_order: list[str] = []
        self.graphs: dict[int, tuple] = {}
        # The trusted side's own arrays and tensors as they were when they first crossed in
        # the current exchange: restored when it ends (see ``restore_inputs``).
        self.originals: dict[str, dict] = {}

    # shared mutable values --------------------------------------------------------------
    def share(self, obj) -> str:
        key = self.keys.get(id(obj))
        if key is None or self.shared.get(key) is not obj:
            key = f"{self.side}:{id(obj)}"
            self.adopt(key, obj)
            if self.trusted and not _is_generator(obj):
                self.originals[key] = _snapshot(obj)
        return key

    def adopt(self, key: str, obj) -> None:
        self.shared[key], self.keys[id(obj)] = obj, key
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(obj, torch.Tensor) and obj.requires_grad \
                and key not in self.grad_order:
            self.grad_order.append(key)

    def clear_shared(self) -> None:
        self.shared, self.keys, self.grad_order, self.originals = {}, {}, [], {}

    def changed_inputs(self) -> dict[int, object]:
        """Our arrays and tensors whose contents the other side changed, by ``id``."""
        return {id(self.shared[key]): self.shared[key] for key, data in self.originals.items()
                if _snapshot(self.shared[key]) != data}

    def restore_inputs(self) -> None:
        """Put back the contents our arrays and tensors had before the exchange.

        During a call the student's in-place changes reach our objects (a finite difference
        that perturbs ``x`` while calling back a test's closure must see ``x`` perturbed);
        once the call returns, a test must compute its expected values from the inputs it
        built, not from inputs the student's code overwrote (``v[:] = v.mean(0)`` would
        otherwise make a wrong answer agree with a reference computed afterwards).
        Generators are not restored: a sampler advances the test's generator on purpose.
        """
        for key, data in self.originals.items():
            _update_in_place(self.shared[key], data, self)

    def snapshot(self) -> dict:
        return {key: _snapshot(obj) for key, obj in self.shared.items()}

    def apply_sync(self, sync: dict | None) -> None:
        for key, data in (sync or {}).items():
            if key in self.shared:
                _update_in_place(self.shared[key], data, self)

    # autograd across the boundary -------------------------------------------------------
    def encode_tensor(self, tensor) -> dict:
        import torch

        data = {**_tensor_data(tensor, torch), "key": self.share(tensor)}
        if not self.trusted and tensor.grad_fn is not None and self.grad_order:
            inputs = [self.shared[k] for k in self.grad_order]
            self.graphs[id(tensor)] = (tensor, inputs)
            data.update(graph=id(tensor), inputs=list(self.grad_order))
        return data

    def attach_graph(self, value, data: dict):
        """Our tensor for a result computed over there from our tensors that need grad."""
        inputs = [self.shared[k] for k in data["inputs"] if k in self.shared]
        if not self.trusted or not inputs:
            return value
        value.requires_grad_(False)
        return _remote_function().apply(self, int(data["graph"]), value, *inputs)

    def backward(self, graph: int, grad) -> list:
        import torch

        tensor, inputs = self.graphs[graph]
        torch.autograd.backward(tensor, grad, retain_graph=True)
        grads = [x.grad for x in inputs]
        for x in inputs:
            x.grad = None
        return grads

    # references ---------------------------------------------------------------------
    def reference(self, obj) -> dict:
        if isinstance(obj, Proxy) and obj._endpoint is self:
            return {"t": "back", "id": obj._id}
        self.objects[id(obj)] = obj
        try:
            text = repr(obj)[:200]
        except Exception:
            text = f"<{type(obj).__name__}>"
        return {"t": "obj", "id": id(obj), "repr": text}

    def proxy(self, ident: int, text: str) -> "Proxy":
        return Proxy(self, ident, text)

    # wire -----------------------------------------------------------------------------
    def send(self, message: dict) -> None:
        if self.shared:
            message["sync"] = self.snapshot()
        data = (json.dumps(message) + "\n").encode()
        try:
            while data:
                self._wait(self.write_fd, writing=True)  # a reader that stops reading: timeout
                try:
                    data = data[os.write(self.write_fd, data):]
                except BlockingIOError:  # the pipe filled up between select and write
                    continue
        except OSError as error:
            raise StudentDied(f"the student's process closed its pipe ({error})") from None

    def _wait(self, fd: int, *, writing: bool = False) -> None:
        """Block until ``fd`` is ready, but never past the deadline of the current cell."""
        timeout = None if self.deadline is None else self.deadline - time.monotonic()
        if timeout is not None and timeout <= 0:
            raise StudentTimeout()
        ready = select.select([], [fd], [], timeout)[1] if writing else \
            select.select([fd], [], [], timeout)[0]
        if not ready:
            raise StudentTimeout()

    def receive(self) -> dict:
        """The next message: bytes up to a newline, read in time linear in their length."""
        while (end := self.buffer.find(b"\n", self.scanned)) < 0:
            self.scanned = len(self.buffer)
            if self.trusted and self.scanned > MAX_MESSAGE_BYTES:
                raise MessageTooLarge(f"it sent more than {MAX_MESSAGE_BYTES >> 20} MiB at once")
            self._wait(self.read_fd)
            chunk = os.read(self.read_fd, 1 << 20)
            if not chunk:
                raise StudentDied("the student's process ended")
            self.buffer += chunk
        line = bytes(self.buffer[:end])
        del self.buffer[:end + 1]
        self.scanned = 0
        return json.loads(line)

    def request(self, op: str, **fields):
        """Send a request; serve the other side's requests until our reply comes."""
        self.depth += 1
        try:
            value = self._exchange(op, fields)
            if self.depth == 1 and self.trusted:
                value = _copy_changed(value, self.changed_inputs())
            return value
        finally:
            self.depth -= 1
            if self.depth == 0 and self.trusted:
                self.restore_inputs()
                self.clear_shared()

    def _exchange(self, op: str, fields: dict):
        self.send({"kind": "request", "op": op, **fields})
        while True:
            message = self.receive()
            self.apply_sync(message.get("sync"))
            if message.get("kind") == "request":
                self.send(self.handle(message))
            elif message.get("kind") == "ok":
                return decode(message["value"], self)
            elif message.get("kind") == "error":
                raise _rebuild_exception(message)
            else:
                raise RemoteError(f"malformed message from the other process: {message!r:.200}")

    def handle(self, message: dict) -> dict:
        """Answer one request; errors go back to the caller, never up our own stack."""
        try:
            return {"kind": "ok", "value": encode(self._perform(message), self)}
        except (StudentTimeout, StudentDied):
            raise
        except BaseException as error:  # the caller gets every exception, even SystemExit
            return {"kind": "error", "type": type(error).__name__, "message": str(error)[:2000],
                    "traceback": _format_without_grader(error)}

    def _perform(self, message: dict):
        op = message["op"]
        target = self.objects[int(message["id"])] if "id" in message else None
        if op == "call":
            return target(*decode(message["args"], self), **decode(message["kwargs"], self))
        if op == "getattr":
            name = message["name"]
            if self.trusted and name.startswith("_"):
                raise AttributeError(f"{name!r} is not available to the student's code")
            return getattr(target, name)
        if self.trusted:
            raise PermissionError(f"operation {op!r} is not available to the student's code")
        return self._perform_untrusted(op, target, message)

    def _perform_untrusted(self, op: str, target, message: dict):
        if op == "setattr":
            return setattr(target, message["name"], decode(message["value"], self))
        if op == "getitem":
            return target[decode(message["key"], self)]
        if op == "len":
            return len(target)
        if op == "iter":
            return iter(target)
        if op == "next":
            try:
                return {"value": next(target)}
            except StopIteration:
                return {"stop": True}
        if op == "array":
            import numpy
            return numpy.asarray(target)
        if op == "float":
            return float(target)
        if op == "bool":
            return bool(target)
        if op == "init":
            return _student_init(message)
        if op == "backward":
            return self.backward(int(message["graph"]), decode(message["grad"], self))
        raise ValueError(f"unknown operation {op!r}")


def _format_without_grader(error: BaseException) -> str:
    """The traceback of ``error`` without the frames of this file (what the student wrote)."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename != __file__]
    text = "".join(traceback.format_list(frames)) + "".join(
        traceback.format_exception_only(error))
    return ("Traceback (most recent call last):\n" + text)[-6000:]


def _rebuild_exception(message: dict) -> BaseException:
    kind = SAFE_EXCEPTIONS.get(message.get("type"), None)
    text = str(message.get("message", ""))
    error = kind(text) if kind is not None else RemoteError(f"{message.get('type')}: {text}")
    error.remote_traceback = str(message.get("traceback", ""))
    return error


def _snapshot(obj) -> dict:
    numpy, torch = sys.modules.get("numpy"), sys.modules.get("torch")
    if numpy is not None and isinstance(obj, numpy.ndarray):
        return _array_data(obj, numpy)
    if numpy is not None and isinstance(obj, numpy.random.Generator):
        return _npgen_data(obj)
    if torch is not None and isinstance(obj, torch.Tensor):
        return _tensor_data(obj, torch)
    return _tgen_data(obj)


def _is_generator(obj) -> bool:
    numpy, torch = sys.modules.get("numpy"), sys.modules.get("torch")
    return ((numpy is not None and isinstance(obj, numpy.random.Generator))
            or (torch is not None and isinstance(obj, torch.Generator)))


def _copy_changed(value, changed: dict[int, object]):
    """``value`` with every object of ``changed`` in it replaced by a copy of its contents.

    A student's function that changes its input in place and returns it hands back *our*
    object; the copy keeps the result it computed once the input is restored.
    """
    if not changed:
        return value
    if id(value) in changed:
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(value, torch.Tensor):
            return value.detach().clone().requires_grad_(value.requires_grad)
        return value.copy()
    if type(value) in (list, tuple):
        return type(value)(_copy_changed(x, changed) for x in value)
    if type(value) is dict:
        return {k: _copy_changed(v, changed) for k, v in value.items()}
    return value


def _update_in_place(obj, data: dict, endpoint: "Endpoint") -> None:
    """Make ``obj`` hold the other side's contents; leave it alone if nothing changed."""
    mine = _snapshot(obj)
    if all(mine.get(k) == data.get(k) for k in ("t", "v", "state", "shape", "dtype")):
        return  # unchanged: an in-place copy would bump autograd's version counter
    new = decode_value(data, endpoint)
    numpy, torch = sys.modules.get("numpy"), sys.modules.get("torch")
    if numpy is not None and isinstance(obj, numpy.ndarray):
        if obj.shape == new.shape and obj.flags.writeable:
            numpy.copyto(obj, new, casting="unsafe")
    elif numpy is not None and isinstance(obj, numpy.random.Generator):
        obj.bit_generator.state = new.bit_generator.state
    elif torch is not None and isinstance(obj, torch.Tensor):
        if obj.shape == new.shape:
            with torch.no_grad():
                obj.copy_(new)
    else:
        obj.set_state(new.get_state())


_REMOTE_FUNCTION: list = []


def _remote_function():
    """A ``torch.autograd.Function`` whose backward asks the student's process for grads."""
    if not _REMOTE_FUNCTION:
        import torch

        class RemoteGraph(torch.autograd.Function):
            @staticmethod
            def forward(ctx, endpoint, graph, value, *inputs):
                ctx.endpoint, ctx.graph = endpoint, graph
                return value.clone()

            @staticmethod
            def backward(ctx, grad):
                grads = ctx.endpoint.request("backward", graph=ctx.graph,
                                             grad=encode(grad, ctx.endpoint))
                return (None, None, None, *grads)

        _REMOTE_FUNCTION.append(RemoteGraph)
    return _REMOTE_FUNCTION[0]


class Proxy:
    """Stands for an object that lives in the other process."""

    __slots__ = ("_endpoint", "_id", "_text")

    def __init__(self, endpoint: Endpoint, ident: int, text: str):
        object.__setattr__(self, "_endpoint", endpoint)
        object.__setattr__(self, "_id", ident)
        object.__setattr__(self, "_text", text)

    def _ask(self, op: str, **fields):
        return self._endpoint.request(op, id=self._id, **fields)

    def __call__(self, *args, **kwargs):
        e = self._endpoint
        return self._ask("call", args=encode(list(args), e), kwargs=encode(dict(kwargs), e))

    def __getattr__(self, name: str):
        # Special and private names (``__array_interface__``, ``__torch_function__``, ...)
        # are protocols the trusted side's libraries consult; the student must not answer
        # them, so they do not exist on a proxy. Only public attributes are forwarded.
        if name.startswith("_"):
            raise AttributeError(f"{name!r} of an object from your code is not used by the "
                                 "grader (only public attributes cross)")
        return self._ask("getattr", name=name)

    def __setattr__(self, name: str, value) -> None:
        self._ask("setattr", name=name, value=encode(value, self._endpoint))

    def __getitem__(self, key):
        return self._ask("getitem", key=encode(key, self._endpoint))

    def __len__(self) -> int:
        return self._ask("len")

    def __iter__(self):
        iterator = self._ask("iter")
        while True:
            step = iterator._ask("next")
            if step.get("stop"):
                return
            yield step["value"]

    def __array__(self, dtype=None, copy=None):
        import numpy
        return numpy.asarray(self._ask("array"), dtype=dtype)

    def __float__(self) -> float:
        return float(self._ask("float"))

    def __bool__(self) -> bool:
        return bool(self._ask("bool"))

    def __repr__(self) -> str:
        return self._text


# --------------------------------------------------------------------------------------
# The student's side
# --------------------------------------------------------------------------------------
_STUDENT_NAMESPACE: dict = {}


class CellTimeoutError(Exception):
    """An answer cell ran past the per-cell limit while it was being defined."""


def _cell_timed_out(signum, frame):
    raise CellTimeoutError("timeout: this answer cell ran longer than the per-cell limit")


def _student_init(message: dict) -> dict:
    """Run the setup cells and the answer cells; report each answer cell's error."""
    namespace = _STUDENT_NAMESPACE
    namespace.update({"__name__": "__main__"})
    for source in message["setup"]:
        exec(compile(source, "<setup cell>", "exec"), namespace)  # noqa: S102 (trusted)
    errors = {}
    limit = float(message["cell_timeout"])
    signal.signal(signal.SIGALRM, _cell_timed_out)
    for grade_id, source in message["cells"]:
        signal.setitimer(signal.ITIMER_REAL, limit)  # each answer cell gets its own limit
        try:
            exec(compile(source, f"<answer cell {grade_id}>", "exec"), namespace)  # noqa: S102
        except BaseException as error:  # the student's code may raise anything
            errors[grade_id] = _format_without_grader(error)[-4000:]
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    exports = {name: namespace[name] for name in message["names"] if name in namespace}
    return {"errors": errors, "exports": exports}


def student_main() -> None:
    """Serve the trusted process over stdin/stdout; the student's prints go nowhere."""
    read_fd, write_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    endpoint = Endpoint(read_fd, write_fd, trusted=False)
    while True:
        try:
            message = endpoint.receive()
        except StudentDied:
            return
        endpoint.apply_sync(message.get("sync"))
        endpoint.send(endpoint.handle(message))
        endpoint.clear_shared()


# --------------------------------------------------------------------------------------
# The trusted side
# --------------------------------------------------------------------------------------
class StudentProcess:
    """A sandboxed ``recheck.py --student`` process with the answer cells loaded."""

    def __init__(self, setup: list[str], cells: list[tuple[str, str]], names: list[str],
                 *, with_lib: bool, timeout: float):
        from grader import sandbox

        script = Path(__file__).resolve()
        argv = sandbox.bwrap_argv([sys.executable, str(script), "--student"],
                                  read_only=(script,), with_lib=with_lib)
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL,
                                        preexec_fn=sandbox.limit_resources)
        self.endpoint = Endpoint(self.process.stdout.fileno(), self.process.stdin.fileno(),
                                 trusted=True)
        os.set_blocking(self.process.stdin.fileno(), False)  # writes return what fits
        self.endpoint.deadline = time.monotonic() + timeout * (len(cells) + 2) + 10
        try:
            reply = self.endpoint.request("init", setup=setup, cells=[list(c) for c in cells],
                                          names=names, cell_timeout=timeout)
        except BaseException:
            self.close()
            raise
        self.errors, self.exports = reply["errors"], reply["exports"]

    def close(self) -> None:
        from grader import sandbox

        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            stream.close()
        sandbox.remove_finished_cgroups()

    def exit_reason(self) -> str:
        code = self.process.poll()
        if code is None:
            return "it stopped answering"
        if code < 0:
            return f"it was killed by signal {-code}"
        return f"it exited with status {code}"


def _describe(error: BaseException, cell_timeout: float, student: StudentProcess | None) -> str:
    if isinstance(error, StudentTimeout):
        return (f"timeout: your code ran longer than {cell_timeout:g} s (the per-cell limit) "
                "and was stopped")
    if isinstance(error, MessageTooLarge):
        return (f"your code sent the grader more than {MAX_MESSAGE_BYTES >> 20} MiB in one "
                "reply (return small arrays: the tests' inputs are small)")
    if isinstance(error, StudentDied):
        why = student.exit_reason() if student else "it ended"
        return (f"your code's process died ({why}); the most common cause is the memory cap "
                f"({os.environ.get('MLFS_MEMORY_MB', '?')} MiB) or a call that exits")
    text = "".join(traceback.format_exception_only(error)).strip()
    remote = getattr(error, "remote_traceback", "")
    if remote:
        text += "\n\nTraceback from your code:\n" + remote.strip()
    return text


def recheck_submission(job: dict, submission: dict) -> dict:
    """``{"tests": {grade_id: {"passed", "reason"}}, "cell_errors": {...}}`` of one student."""
    timeout = float(job["cell_timeout"])
    tests: dict[str, dict] = {}
    student: StudentProcess | None = None
    startup_failure: str | None = None
    namespace: dict = {"__name__": "__main__"}
    for source in job["setup"]:
        exec(compile(source, "<setup cell>", "exec"), namespace)  # noqa: S102 (trusted)
    trusted_names = set(namespace)  # a student's name never replaces one of the setup's
    cell_errors: dict[str, str] = {}
    for grade_id, source in job["tests"]:
        if startup_failure is not None:
            tests[grade_id] = {"passed": False, "reason": startup_failure}
            continue
        if student is None:
            try:
                student = StudentProcess(job["setup"], submission["cells"], submission["names"],
                                         with_lib=job["with_lib"], timeout=timeout)
            except (StudentTimeout, StudentDied) as error:
                startup_failure = ("your answer cells could not be loaded: "
                                   + _describe(error, timeout, None))
                tests[grade_id] = {"passed": False, "reason": startup_failure}
                continue
            cell_errors.update(student.errors)
            namespace.update({name: value for name, value in student.exports.items()
                              if name not in trusted_names})
        student.endpoint.deadline = time.monotonic() + timeout
        try:
            exec(compile(source, f"<test cell {grade_id}>", "exec"), namespace)  # noqa: S102
            tests[grade_id] = {"passed": True, "reason": ""}
        except BaseException as error:  # a failing test may raise anything
            tests[grade_id] = {"passed": False, "reason": _describe(error, timeout, student)}
            if isinstance(error, (StudentTimeout, StudentDied)):
                student.close()
                student = None
    if student is not None:
        student.close()
    return {"tests": tests, "cell_errors": cell_errors}


def trusted_main(job_path: Path, result_path: Path) -> None:
    """Re-check every submission of one job file; write the results as JSON."""
    job = json.loads(job_path.read_text())
    results = {}
    for submission in job["submissions"]:
        started = time.monotonic()
        try:
            results[submission["student"]] = recheck_submission(job, submission)
        except Exception:  # a bug here must not lose the other students' results
            results[submission["student"]] = {"grader_error": traceback.format_exc()[-4000:]}
        results[submission["student"]]["seconds"] = time.monotonic() - started
        result_path.write_text(json.dumps(results))


if __name__ == "__main__":
    if sys.argv[1:] == ["--student"]:
        student_main()
    elif len(sys.argv) == 3:
        trusted_main(Path(sys.argv[1]), Path(sys.argv[2]))
    else:
        sys.exit("usage: recheck.py JOB.json RESULT.json   |   recheck.py --student")
