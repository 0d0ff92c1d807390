"""Input checks shared by every ``lib`` module.

Every public function validates its arguments with these helpers so that a mistake
raises a ``ValueError`` that names the argument and the shape it got, instead of being
broadcast silently into a wrong answer. The helpers accept NumPy arrays and torch
tensors alike (both have ``.shape`` and ``.ndim``).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def shape_of(x: Any) -> tuple[int, ...]:
    """The shape of an array or tensor as a plain tuple (for error messages)."""
    return tuple(int(s) for s in x.shape)


def check_ndim(name: str, x: Any, ndims: int | Iterable[int]) -> None:
    """Raise unless ``x.ndim`` is one of ``ndims``."""
    allowed = (ndims,) if isinstance(ndims, int) else tuple(ndims)
    if x.ndim not in allowed:
        want = " or ".join(str(n) for n in allowed)
        raise ValueError(f"{name} must have {want} dimensions, got shape {shape_of(x)}")


def check_min_ndim(name: str, x: Any, min_ndim: int) -> None:
    """Raise unless ``x`` has at least ``min_ndim`` dimensions."""
    if x.ndim < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimensions, got shape {shape_of(x)}"
        )


def check_same_shape(name_a: str, a: Any, name_b: str, b: Any) -> None:
    """Raise unless ``a`` and ``b`` have exactly the same shape."""
    if shape_of(a) != shape_of(b):
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, "
            f"got {name_a} {shape_of(a)} and {name_b} {shape_of(b)}"
        )


def check_broadcastable(name: str, shape: Sequence[int], target: Sequence[int],
                        target_name: str) -> None:
    """Raise unless ``shape`` broadcasts to ``target`` *without changing* ``target``.

    This is stricter than NumPy's rule: a mask may be expanded to the score shape, but
    it may not make the scores themselves bigger.
    """
    shape, target = tuple(shape), tuple(target)
    ok = len(shape) <= len(target) and all(
        s == 1 or s == t for s, t in zip(reversed(shape), reversed(target))
    )
    if not ok:
        raise ValueError(
            f"{name} of shape {shape} does not broadcast to {target_name} of shape {target}"
        )


def check_option(name: str, value: Any, options: Iterable[Any]) -> None:
    """Raise unless ``value`` is one of ``options``."""
    options = tuple(options)
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")


def check_in_range(name: str, value: float, low: float, high: float,
                   low_open: bool = False, high_open: bool = False) -> None:
    """Raise unless the scalar ``value`` lies in the interval from ``low`` to ``high``."""
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        raise ValueError(f"{name} must be in {left}{low}, {high}{right}, got {value!r}")
