"""controllers/ stands alone: nothing in it imports the twin (sim/) or learning code (robot_learning/).

Checked on the source (every import statement, lazy ones inside functions included), so an import that only
runs on one code path cannot slip through.
"""

from __future__ import annotations

import ast
from pathlib import Path

CONTROLLERS = Path(__file__).resolve().parents[2] / "controllers"
FORBIDDEN = ("sim", "robot_learning")
# ROS message support that lives under robot_learning/ for now; it moves to a ROS-support home (issue #18).
ALLOWED_UNTIL_MOVED = ("robot_learning.ros_msgs",)


def imported_modules(path: Path) -> list[str]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.append(node.module)
    return modules


def test_controllers_import_neither_the_twin_nor_learning_code():
    offenders = []
    for path in sorted(CONTROLLERS.rglob("*.py")):
        for module in imported_modules(path):
            top = module.split(".")[0]
            allowed = any(module == a or module.startswith(a + ".") for a in ALLOWED_UNTIL_MOVED)
            if top in FORBIDDEN and not allowed:
                offenders.append(f"{path.relative_to(CONTROLLERS.parent)}: {module}")
    assert offenders == []
