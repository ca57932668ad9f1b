"""The program a sandboxed test process runs: the files of ``inside/`` joined into one source.

It is passed on the command line (``python -I -S -B -c BOOTSTRAP <config fd>``), so nothing
outside the interpreter's own stdlib has to be readable inside the sandbox, and it is compiled
with the file name ``<steer-runner>``, which the guard treats as the harness's own code.
"""
from __future__ import annotations

import ast
from importlib import resources

#: the files of ``inside/`` in the order they are joined (``runner`` last: it calls ``_main``)
INSIDE = ("rewrite", "checks", "fsguard", "guard", "runner")
RUNNER_FILENAME = "<steer-runner>"


def _inside_source(name: str) -> tuple[str, set[str]]:
    """The source of ``inside/<name>.py`` without its relative imports (the files share one
    namespace once joined), and the top-level names it defines."""
    path = resources.files(f"{__package__}.inside").joinpath(f"{name}.py")
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text, f"inside/{name}.py")
    drop: set[int] = set()
    defined: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level:
            drop.update(range(node.lineno - 1, node.end_lineno or node.lineno))
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined.update(t.id for t in targets if isinstance(t, ast.Name))
    lines = text.splitlines(keepends=True)
    return "".join(ln for i, ln in enumerate(lines) if i not in drop), defined


def build_source() -> str:
    """The joined program; raises RuntimeError if two files define the same top-level name."""
    parts: list[str] = []
    owner: dict[str, str] = {}
    for name in INSIDE:
        source, defined = _inside_source(name)
        clash = sorted(n for n in defined if n in owner)
        if clash:
            raise RuntimeError(f"inside/{name}.py redefines {clash} (from inside/"
                               f"{owner[clash[0]]}.py); the files share one namespace")
        owner.update(dict.fromkeys(defined, name))
        parts.append(f"# ---- inside/{name}.py\n{source}")
    return "\n\n".join(parts)


RUNNER_SOURCE = build_source()
compile(RUNNER_SOURCE, RUNNER_FILENAME, "exec")  # fail at import on a syntax error
#: the ``-c`` argument of every sandboxed test process
BOOTSTRAP = ("exec(compile(%r, %r, 'exec'), "
             "{'__name__': '__steer_runner__', '__builtins__': __builtins__})"
             % (RUNNER_SOURCE, RUNNER_FILENAME))
