"""docs/reliability.md lists every case of this suite: a new test needs its row in the table."""

from __future__ import annotations

import ast
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAGE = HERE.parents[1] / "docs" / "reliability.md"


def test_every_reliability_test_has_a_row_in_the_docs_table():
    text = PAGE.read_text(encoding="utf-8")
    names = [
        node.name
        for path in sorted(HERE.glob("test_*.py"))
        if path.name != Path(__file__).name
        for node in ast.parse(path.read_text(encoding="utf-8")).body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    ]
    assert len(names) >= 40
    missing = [name for name in names if f"::{name}" not in text]
    assert not missing, f"add a row to docs/reliability.md for: {missing}"
