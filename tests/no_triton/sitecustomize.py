"""Make ``import triton`` fail, as on macOS and Windows where Triton has no wheels.

Put this folder first on PYTHONPATH: Python imports ``sitecustomize`` at start-up, and the
finder below answers every ``triton`` or ``triton.*`` import with ModuleNotFoundError.
Used by ``tests/test_without_triton.py``.
"""
import importlib.abc
import sys


class _NoTriton(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "triton" or name.startswith("triton."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked for the test)", name=name)
        return None


sys.meta_path.insert(0, _NoTriton())
