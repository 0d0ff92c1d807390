"""The static policy on students' answer cells, checked on the source before grading.

It runs in the grader's own process on the text of each answer cell (``ast``), so nothing
the student writes can switch it off. It is the first of two defences (the second is the
trusted re-check in ``grader/split.py``, which holds even against code that slips past
this one); it names the rule a cell breaks so that the feedback can say so.

Two kinds of finding:

* ``lib``: the cell imports the course's reference package. The answer is not the
  student's work, so the tests that use this cell score zero.
* ``tamper``: the cell reaches for the machinery instead of the task (patching a module,
  ``builtins`` or a test helper, dynamic code, dunder attributes, files, processes, the
  network). Tampering can affect every test, so every test of the notebook scores zero.

Imports outside the allowed set that are not tampering by themselves count as ``import``
findings and zero the tests that use the cell, like ``lib``.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass

# Modules an answer may import: numerical libraries and harmless parts of the standard
# library. An assignment's setup cell widens the set with whatever it imports itself.
ALLOWED_MODULES = frozenset({
    "numpy", "torch", "math", "cmath", "itertools", "functools", "collections", "dataclasses",
    "typing", "heapq", "bisect", "operator", "string", "re", "statistics", "fractions",
    "numbers", "enum", "abc", "copy", "random", "unicodedata", "__future__"})
# Modules that give access to the file system, processes, the interpreter or the network.
TAMPER_MODULES = frozenset({
    "os", "sys", "builtins", "importlib", "subprocess", "pathlib", "shutil", "io", "inspect",
    "gc", "ctypes", "socket", "urllib", "http", "pickle", "marshal", "runpy", "types",
    "threading", "multiprocessing", "signal", "resource", "tempfile", "glob", "atexit",
    "code", "codeop", "traceback", "unittest", "pytest", "sqlite3", "nbgrader", "IPython"})
FORBIDDEN_CALLS = frozenset({
    "__import__", "eval", "exec", "compile", "open", "globals", "locals", "vars", "getattr",
    "setattr", "delattr", "breakpoint", "input", "exit", "quit", "help", "memoryview",
    "get_ipython"})
ALLOWED_DUNDER_ATTRIBUTES = frozenset({"__init__"})
# What a statement forbids, per assignment: ``{assignment: {name: cells allowed to call it}}``.
# In the cells listed the name may only be called directly (``F.name(...)``), never bound
# to another name (which another cell could then call); in every other cell any use of it
# is a ``forbidden`` finding, which zeroes the tests that use the cell.
STATEMENT_FORBIDS = {
    "attention": {"scaled_dot_product_attention": frozenset({"mha"})},
}
# An answer cell longer than this is not read (nor run): the policy's time stays bounded.
MAX_ANSWER_CHARS = 20_000


@dataclass(frozen=True)
class Finding:
    kind: str  # "lib", "import", "forbidden", "size" or "tamper"
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def imported_roots(sources: list[str]) -> set[str]:
    """Top-level modules imported by trusted cells (the setup cells)."""
    roots = set()
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                roots |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                roots.add(node.module.split(".")[0])
    return roots


def top_level_names(source: str) -> set[str]:
    """Names a cell binds at module level (functions, classes, assignments, imports)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set()
    for node in tree.body:
        names |= _bound_names(node)
    return names


def _bound_names(node: ast.AST) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    names = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Name) and isinstance(child.ctx, (ast.Store, ast.Del)):
            names.add(child.id)
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(child.name)
    return names


def used_names(source: str) -> set[str]:
    """Every name a cell reads (to find which answer cells a test cell depends on)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def import_aliases(sources: list[str]) -> dict[str, str]:
    """``{name: module}`` for the plain imports of trusted cells (``np`` -> ``numpy``)."""
    aliases = {}
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                aliases.update({a.asname or a.name: a.name for a in node.names})
    return aliases


def check_cell(source: str, *, setup_names: set[str], setup_modules: set[str],
               setup_aliases: dict[str, str] | None = None) -> list[Finding]:
    """The policy findings of one answer cell (an unparsable cell has none: it just fails).

    Re-importing a module under the setup cell's own name (``import numpy as np``) is
    allowed; any other rebinding of a setup name is tampering.
    """
    setup_aliases = setup_aliases or {}
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    allowed = ALLOWED_MODULES | (setup_modules - {"lib"})
    findings = []
    for node in ast.walk(tree):
        findings += _check_node(node, allowed)
    for node in tree.body:
        same_import = {a.asname or a.name for a in getattr(node, "names", [])
                       if isinstance(node, ast.Import)
                       and setup_aliases.get(a.asname or a.name) == a.name}
        for name in sorted((_bound_names(node) & setup_names) - same_import):
            findings.append(Finding("tamper", node.lineno,
                                    f"redefines `{name}`, which the read-only setup cell provides"))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            for name in sorted(set(node.names) & setup_names):
                findings.append(Finding("tamper", node.lineno,
                                        f"rebinds `{name}` of the setup cell through `global`"))
    findings += _attribute_stores(tree, setup_names)
    return sorted(set(findings), key=lambda f: (f.line, f.message))


def forbidden_uses(source: str, assignment: str, grade_id: str) -> list[Finding]:
    """Uses of what ``assignment``'s statement forbids in answer cell ``grade_id``."""
    rules = STATEMENT_FORBIDS.get(assignment, {})
    if not rules:
        return []
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    findings = []
    for node in ast.walk(tree):
        name = node.attr if isinstance(node, ast.Attribute) else \
            node.id if isinstance(node, ast.Name) else \
            node.name.split(".")[-1] if isinstance(node, ast.alias) else None
        if name not in rules:
            continue
        if grade_id in rules[name] and id(node) in called:
            continue
        where = "here" if grade_id not in rules[name] else "except as a direct call"
        findings.append(Finding("forbidden", node.lineno,
                                f"uses `{name}`, which the statement forbids {where}"))
    return findings


def _check_node(node: ast.AST, allowed: set[str]) -> list[Finding]:
    line = getattr(node, "lineno", 0)
    if isinstance(node, ast.Import):
        return [f for a in node.names if (f := _check_module(a.name, line, allowed))]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            return [Finding("tamper", line, "relative import")]
        found = _check_module(node.module or "", line, allowed)
        return [found] if found else []
    if isinstance(node, ast.Name):
        if node.id in FORBIDDEN_CALLS:
            return [Finding("tamper", line, f"uses `{node.id}`, which the answers may not use")]
        if node.id.startswith("__") and node.id.endswith("__"):
            return [Finding("tamper", line, f"uses the interpreter name `{node.id}`")]
    if isinstance(node, ast.Attribute) and node.attr.startswith("__") \
            and node.attr not in ALLOWED_DUNDER_ATTRIBUTES:
        return [Finding("tamper", line, f"reads the dunder attribute `.{node.attr}`")]
    return []


def _check_module(module: str, line: int, allowed: set[str]) -> Finding | None:
    root = module.split(".")[0]
    if root == "lib":
        return Finding("lib", line, f"imports `{module}`, the course's reference answers")
    if root in TAMPER_MODULES:
        return Finding("tamper", line, f"imports `{module}` (files, processes or the "
                                       "interpreter are out of bounds)")
    if root not in allowed:
        return Finding("import", line, f"imports `{module}`, which this assignment does not allow")
    return None


def _attribute_stores(tree: ast.Module, setup_names: set[str]) -> list[Finding]:
    """Assigning an attribute of a module or of a setup object is tampering.

    ``np.allclose = ...``, ``numpy.testing.assert_allclose = ...``, ``check_close.x = ...``
    and ``t = np.testing; t.assert_allclose = ...`` are found; ``self.w = ...`` or
    ``x.requires_grad = True`` on the cell's own objects are not. Subtler routes (passing
    a module through a function argument) are left to the trusted re-check.
    """
    tainted = set(setup_names)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            tainted |= _bound_names(node)
    changed = True
    while changed:
        changed = False
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and _root_name(node.value) in tainted:
                for target in node.targets:
                    new = {n.id for n in ast.walk(target) if isinstance(n, ast.Name)} - tainted
                    tainted |= new
                    changed = changed or bool(new)
    findings = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del)) \
                and _root_name(node.value) in tainted:
            findings.append(Finding("tamper", node.lineno,
                                    f"assigns to `.{node.attr}` of `{_root_name(node.value)}` "
                                    "(patching a module or a test helper)"))
    return findings


def _root_name(node: ast.AST) -> str | None:
    """``a`` for ``a``, ``a.b.c`` or ``a[0].b``; None when a call or other value is involved."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def dependencies(test_source: str, cells: dict[str, str]) -> set[str]:
    """The answer cells (by grade_id) a test cell uses, directly or through other answers."""
    defined = {gid: top_level_names(src) for gid, src in cells.items()}
    needed, frontier = set(), used_names(test_source)
    while frontier:
        new = {gid for gid, names in defined.items() if names & frontier} - needed
        needed |= new
        frontier = set().union(*(used_names(cells[gid]) for gid in new)) if new else set()
    return needed
