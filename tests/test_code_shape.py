"""The shape DEVELOPERS.md promises: imports at module top, short functions.

An import deferred into a function says why, where it is. The documented boundaries (DEVELOPERS.md): the CLI before TensorFlow loads,
Beam workers, optional extras (kfp, aiplatform, dask), kfp component bodies
and an import cycle. Everything else is imported at module top, so the
dependency graph is what a reader and a tool see.
"""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("bertline", "preprocessing", "pretraining", "model", "trainer", "evaluator", "exporter",
            "components", "pipeline")
# A script run as `python -I` in a clean process: it must never import bertline, and its
# imports are its own business.
STANDALONE = {"exporter/serving_probe.py"}


def _deferred_imports():
  for package in PACKAGES:
    for path in sorted((ROOT / package).rglob("*.py")):
      rel = path.relative_to(ROOT).as_posix()
      if rel in STANDALONE:
        continue
      lines = path.read_text().splitlines()
      for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
          for inner in ast.walk(node):
            if isinstance(inner, (ast.Import, ast.ImportFrom)):
              yield rel, inner.lineno, lines[inner.lineno - 1], lines[inner.lineno - 2]


def test_every_import_inside_a_function_gives_its_reason():
  unexplained = [f"{rel}:{line}: {text.strip()}" for rel, line, text, above in _deferred_imports()
                 if "#" not in text and not above.strip().startswith("#")]
  assert not unexplained, "imports deferred without a reason:\n" + "\n".join(unexplained)


def test_few_imports_are_deferred():
  """The boundaries are few: a new deferral is a design decision, not a habit. A kfp
  component's body imports inside by kfp's rule (kfp ships the body alone), one per component:
  those are not counted."""
  deferred = [d for d in _deferred_imports() if d[0] != "components/kfp_components.py"]
  assert len(deferred) <= 27, "\n".join(f"{r}:{n}" for r, n, _, _ in deferred)


# "About 60 lines": a function past this is split into named steps (Trainer.fit's shape).
MAX_FUNCTION_LINES = 66


def test_no_function_in_stage_code_is_long():
  long = []
  for package in PACKAGES:
    for path in sorted((ROOT / package).rglob("*.py")):
      rel = path.relative_to(ROOT).as_posix()
      for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
          lines = node.end_lineno - node.lineno + 1
          if lines > MAX_FUNCTION_LINES and rel not in STANDALONE:
            long.append(f"{rel}:{node.lineno} {node.name}: {lines} lines")
  assert not long, "split these into named steps:\n" + "\n".join(long)


def _mirrored_test(rel: str) -> pathlib.Path:
  """tests/<package path>/test_<module>.py; the top package `bertline/` maps to tests/ itself
  (its modules are the shared ground floor), and __main__.py to test_main.py."""
  path = pathlib.PurePosixPath(rel)
  name = "main" if path.stem == "__main__" else path.stem
  folder = path.parent.parts[1:] if path.parts[0] == "bertline" else path.parent.parts
  return ROOT.joinpath("tests", *folder, f"test_{name}.py")


def test_every_module_has_its_test_file_under_the_same_folder_name():
  missing = []
  for package in PACKAGES:
    for path in sorted((ROOT / package).rglob("*.py")):
      rel = path.relative_to(ROOT).as_posix()
      if path.name != "__init__.py" and not _mirrored_test(rel).exists():
        missing.append(f"{rel} -> {_mirrored_test(rel).relative_to(ROOT)}")
  assert not missing, "modules without their test file:\n" + "\n".join(missing)
