"""The code that runs inside the sandbox, one process per test: guard, checkers, test rewriting.

These files are not imported by the host: ``..script`` joins them into one program (in the order
of ``script.INSIDE``, ``runner.py`` last) that ``python -I -S -B`` runs inside the sandbox. So:

* stdlib only, no ``from __future__`` import, nothing from ``steer``;
* they share one namespace: a top-level name may be defined in one file only (checked when the
  program is built), and their ``from .x import ...`` lines exist for readers and linters only
  (the build drops them);
* the ``*_factory`` functions run with empty globals and no builtins (``runner._isolated``):
  they may use only their arguments, and their nested functions take no annotations.
"""
