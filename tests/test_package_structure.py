"""How the two packages depend on each other, read from their source.

The library must not depend on the application (``durus -c`` finds the
shell through an entry point), and neither package may have an import
cycle.  For ``durus`` every import counts, including those inside
functions, so no function-level import can be there only to hide a cycle.
"""

import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ('durus', 'durus_shell')


def imported_modules(package, top_level_only):
    """``{module: set of modules of either package it imports}``."""
    graph = {}
    folder = os.path.join(REPO, package)
    for filename in sorted(os.listdir(folder)):
        if not filename.endswith('.py'):
            continue
        module = '%s.%s' % (package, filename[:-3])
        with open(os.path.join(folder, filename)) as f:
            tree = ast.parse(f.read(), filename)
        nodes = tree.body if top_level_only else ast.walk(tree)
        found = set()
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                if node.level:
                    raise AssertionError('%s: relative import' % module)
                if node.module in PACKAGES:
                    # from durus import shelf_index: a module of it
                    found.update('%s.%s' % (node.module, alias.name)
                                 for alias in node.names)
                else:
                    found.add(node.module)
        graph[module] = {name for name in found
                         if name.split('.')[0] in PACKAGES and name != module}
    return graph


def find_cycle(graph):
    """One import cycle as a list of modules, or None."""
    state = {}

    def visit(module, path):
        state[module] = 'open'
        for imported in sorted(graph.get(module, ())):
            if state.get(imported) == 'open':
                return path[path.index(imported):] + [imported]
            if imported not in state:
                cycle = visit(imported, path + [imported])
                if cycle:
                    return cycle
        state[module] = 'done'
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module, [module])
            if cycle:
                return cycle
    return None


def test_the_library_imports_nothing_of_the_shell():
    graph = imported_modules('durus', top_level_only=False)
    offenders = sorted('%s -> %s' % (module, name)
                       for module, names in graph.items()
                       for name in names if name.startswith('durus_shell'))
    assert offenders == []


def test_no_import_cycle_in_durus_even_through_function_level_imports():
    assert find_cycle(imported_modules('durus', top_level_only=False)) is None


def test_no_import_cycle_in_the_shell_at_module_level():
    assert find_cycle(imported_modules('durus_shell',
                                       top_level_only=True)) is None


@pytest.mark.parametrize('graph, cycle', [
    ({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}, ['a', 'b', 'c', 'a']),
    ({'a': {'b'}, 'b': set(), 'c': {'b'}}, None),
])
def test_the_cycle_finder_finds_cycles(graph, cycle):
    assert find_cycle(graph) == cycle
