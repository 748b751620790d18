"""The gateway sits below the blueprints: nothing in gateway_app imports them.

The one exception is the app's assembly: create_app registers the blueprints, and that
import is named here so that no other one can hide behind it.
"""
import ast
import pathlib

import gateway_app

PACKAGE = pathlib.Path(gateway_app.__file__).parent
ASSEMBLY = ("gateway_app/__init__.py", "create_app", "blueprints")  # file, function, module


def is_blueprints(module):
    return module == "blueprints" or module.startswith("blueprints.")


class BlueprintImports(ast.NodeVisitor):
    """Every import of blueprints in one module, lazy ones inside functions included."""

    def __init__(self, path):
        self.path = path
        self.functions = []
        self.found = []

    def visit_FunctionDef(self, node):
        self.functions.append(node.name)
        self.generic_visit(node)
        self.functions.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def note(self, node, module):
        function = self.functions[-1] if self.functions else None
        self.found.append((self.path, function, module, node.lineno))

    def visit_Import(self, node):
        for alias in node.names:
            if is_blueprints(alias.name):
                self.note(node, alias.name)

    def visit_ImportFrom(self, node):
        if node.level == 0 and node.module and is_blueprints(node.module):
            self.note(node, node.module)

    def visit_Call(self, node):
        # importlib.import_module("blueprints.ops"), __import__("blueprints")
        name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
        if name in ("import_module", "__import__") and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str) \
                    and is_blueprints(first.value):
                self.note(node, first.value)
        self.generic_visit(node)


def blueprint_imports():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).as_posix()
        visitor = BlueprintImports(relative)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=relative))
        found.extend(visitor.found)
    return found


def test_nothing_below_the_blueprints_imports_them():
    offending = [f"{path}:{line} imports {module}" for path, function, module, line in blueprint_imports()
                 if (path, function, module) != ASSEMBLY]
    assert offending == []


def test_the_check_sees_lazy_and_dynamic_imports():
    source = ("import blueprints.ops\n"
              "def f():\n    from blueprints.ops import READINESS_CHECKS\n"
              "def g():\n    importlib.import_module('blueprints.calls')\n"
              "from gateway_app import blueprints_like\n")
    visitor = BlueprintImports("example.py")
    visitor.visit(ast.parse(source))
    assert [(function, module) for _path, function, module, _line in visitor.found] == [
        (None, "blueprints.ops"), ("f", "blueprints.ops"), ("g", "blueprints.calls")]
