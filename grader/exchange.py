"""What crosses between the grader and a student's process: plain arrays, nothing else.

A graded test hands the student's ``run`` a dict of inputs and gets back a dict of
outputs. Both travel as one ``.npz`` file (NumPy's zip of ``.npy`` arrays), read with
``allow_pickle=False``: no object is ever unpickled or evaluated on the trusted side.

The tree a test may send is made of

* ``dict`` (string keys), ``list``, ``tuple``,
* ``None``, ``bool``, ``int``, ``float``, ``str``,
* NumPy arrays and NumPy scalars (any numeric dtype, including complex and bool),
* torch tensors (CPU copies; ``bfloat16`` travels as ``float32`` and is cast back, and a
  tensor that requires grad comes back as a leaf that requires grad: a fresh start for autograd).

Its shape (which keys, which containers, which leaf is which array) is one JSON string
stored in the archive as a unicode array; each array is one ``.npy`` member. Anything
else (a class instance, a closure, an object array) raises :class:`NotData` when it is
encoded, so a student's object never reaches the grader.
"""
from __future__ import annotations

import io
import json
import math
import zipfile

import numpy as np

# The largest archive the grader reads from a student's process: the tests' arrays are
# small, and a 64 MiB reply is not an answer.
MAX_BYTES = 64 * 2**20
_TREE = "tree"
_TORCH_DTYPES = {"float16", "bfloat16", "float32", "float64", "complex64", "complex128",
                 "int8", "int16", "int32", "int64", "uint8", "bool"}


class NotData(TypeError):
    """A value that is not plain data (see the module docstring) was about to cross."""


def _torch():
    import torch  # only when a tensor is involved: NumPy-only assignments never load it

    return torch


def _leaf(value, arrays: list[np.ndarray], where: str):
    """The JSON description of one value; arrays are appended to ``arrays``."""
    if value is None or (isinstance(value, (bool, int, str)) and not isinstance(value, np.generic)):
        return value
    if isinstance(value, float) and not isinstance(value, np.generic):
        # JSON has no NaN or infinity: those floats travel as 0-d arrays
        return value if math.isfinite(value) else _leaf(np.float64(value), arrays, where)
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        if array.dtype.hasobject or array.dtype.kind not in "biufcU":
            raise NotData(f"{where}: an array of dtype {array.dtype} is not plain data")
        arrays.append(array.copy(order="C"))
        kind = "scalar" if isinstance(value, np.generic) else "array"
        return {kind: len(arrays) - 1}
    if type(value).__module__.startswith("torch") and type(value).__name__ in {
            "Tensor", "Parameter"}:
        torch = _torch()
        tensor = value.detach().cpu()
        dtype = str(tensor.dtype).removeprefix("torch.")
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
        arrays.append(tensor.numpy().copy(order="C"))
        return {"tensor": len(arrays) - 1, "dtype": dtype, "grad": bool(value.requires_grad)}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise NotData(f"{where}: a dict with a key that is not a string")
        return {"dict": {k: _leaf(v, arrays, f"{where}[{k!r}]") for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        kind = "list" if isinstance(value, list) else "tuple"
        return {kind: [_leaf(v, arrays, f"{where}[{i}]") for i, v in enumerate(value)]}
    raise NotData(f"{where}: a {type(value).__name__} is not plain data (send arrays, "
                  "tensors, numbers, strings, lists, tuples or dicts)")


def encode(tree, what: str = "value") -> bytes:
    """``tree`` as the bytes of one ``.npz`` archive; raise :class:`NotData` on anything else."""
    arrays: list[np.ndarray] = []
    shape = json.dumps(_leaf(tree, arrays, what))
    buffer = io.BytesIO()
    np.savez(buffer, **{_TREE: np.array(shape)}, **{f"a{i}": a for i, a in enumerate(arrays)})
    return buffer.getvalue()


def _build(node, arrays, torch_module):
    if not isinstance(node, dict):
        return node
    if "array" in node:
        return arrays[f"a{node['array']}"]
    if "scalar" in node:
        return arrays[f"a{node['scalar']}"][()]
    if "tensor" in node:
        torch = torch_module()
        if node["dtype"] not in _TORCH_DTYPES:
            raise TypeError(f"tensor dtype {node['dtype']!r}")
        tensor = torch.from_numpy(arrays[f"a{node['tensor']}"].copy())
        tensor = tensor.to(getattr(torch, node["dtype"]))
        return tensor.requires_grad_() if node["grad"] else tensor
    if "dict" in node:
        return {k: _build(v, arrays, torch_module) for k, v in node["dict"].items()}
    if "list" in node:
        return [_build(v, arrays, torch_module) for v in node["list"]]
    return tuple(_build(v, arrays, torch_module) for v in node["tuple"])


def decode(raw: bytes):
    """The tree :func:`encode` wrote. Raise ``ValueError`` on an archive that is not one."""
    if len(raw) > MAX_BYTES:
        raise ValueError(f"{len(raw)} bytes is more than the {MAX_BYTES >> 20} MiB a reply may have")
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as members:  # a small zip may inflate to gigabytes
            if sum(m.file_size for m in members.infolist()) > MAX_BYTES:
                raise ValueError(f"the arrays inflate past {MAX_BYTES >> 20} MiB")
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        shape = json.loads(str(arrays.pop(_TREE)[()]))
        return _build(shape, arrays, _torch)
    except (OSError, KeyError, IndexError, TypeError, AttributeError, RecursionError,
            RuntimeError, json.JSONDecodeError, zipfile.BadZipFile) as error:
        raise ValueError(f"not an archive of plain data: {type(error).__name__}: {error}") from None
