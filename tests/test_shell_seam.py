"""The seam between durus and the shell: the shell patches nothing, and
neither package has an import cycle (not even one hidden in a function)."""

import ast
import importlib
import inspect as pyinspect
import os
import pkgutil

import pytest

import durus
import durus_shell
from durus.connection import Connection
from durus.file_storage import FileStorage
from durus.serialize import ObjectWriter
from durus_shell.commands import run_input
from durus_shell.session import GATE_READONLY, Session
from durus_shell.ui import RecordingUI

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _modules(package):
    names = [package.__name__]
    for info in pkgutil.iter_modules(package.__path__):
        names.append('%s.%s' % (package.__name__, info.name))
    return names


def _durus_classes():
    classes = {}
    for name in _modules(durus):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue   # e.g. the optional compiled module
        for value in vars(module).values():
            if (isinstance(value, type)
                    and (value.__module__ or '').startswith('durus')):
                classes[value] = None
    return list(classes)


def _snapshot(classes):
    return {cls: dict(vars(cls)) for cls in classes}


def _differences(before, after):
    found = []
    for cls, attributes in before.items():
        now = after[cls]
        for name in set(attributes) | set(now):
            if attributes.get(name, KeyError) is not now.get(name, KeyError):
                found.append('%s.%s' % (cls.__qualname__, name))
    return found


def test_a_session_changes_no_durus_class_and_no_connection_method(
        fixture_copy):
    path = fixture_copy('shelf.durus')
    classes = _durus_classes()
    before = _snapshot(classes)
    # The session asks for load snapshots, a constructor option.
    plain = Connection(FileStorage(path, readonly=True), load_snapshots=True)
    plain_attributes = dict(vars(plain))
    plain.storage.close()
    session = Session(FileStorage(path))
    try:
        run_input(session, "root['users'][3].name = 'x'")
        run_input(session, "root['users'][4].tags.append('y')")
        run_input(session, ':diff', RecordingUI())
        run_input(session, ':undo', RecordingUI())
        session.commit()
        session.abort()
        # The instance has the attributes a plain Connection has, none of
        # them a replacement of a method.
        attributes = dict(vars(session.connection))
        assert set(attributes) == set(plain_attributes)
        for name, value in attributes.items():
            if name == '_writer':
                # The writer kept from the last commit (None before one).
                assert value is None or isinstance(value, ObjectWriter)
                continue
            assert type(value) is type(plain_attributes[name]), name
        assert set(vars(session.connection.reader)) == set(
            vars(plain.reader)) | {'missing_class_factory'}
    finally:
        session.close()
    assert _differences(before, _snapshot(classes)) == []


def test_readonly_session_runs_the_compiled_load_path(fixture_copy):
    """No storage wrapper: the connection reads its FileStorage itself."""
    path = fixture_copy('shelf.durus')
    session = Session(FileStorage(path, readonly=True), mode=GATE_READONLY)
    try:
        assert type(session.connection.storage) is FileStorage
        assert run_input(session, 'storage').value is session.storage
        result = run_input(session, "root['users'][3].name = 'x'\n"
                                    "connection.commit()")
        assert 'ReadOnlyError' in result.traceback
        assert session.change_count() == 1   # still pending, not lost
    finally:
        session.close()


def _imports(package_dir, package):
    """``{module: [(imported module, at top level?)]}`` inside ``package``."""
    graph = {}
    for filename in sorted(os.listdir(package_dir)):
        if not filename.endswith('.py'):
            continue
        name = package + '.' + filename[:-3]
        if filename == '__init__.py':
            name = package
        with open(os.path.join(package_dir, filename)) as f:
            tree = ast.parse(f.read())
        edges = []
        top = set(id(node) for node in tree.body)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [
                    node.module + '.' + alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                if target.startswith(package + '.') or target == package:
                    edges.append((target, id(node) in top))
        graph[name] = edges
    return graph


def _cycle(graph):
    known = set(graph)
    state = {}

    def visit(node, trail):
        state[node] = 'open'
        for target, _ in graph.get(node, ()):
            if target not in known:
                continue
            if state.get(target) == 'open':
                return trail + [target]
            if target not in state:
                found = visit(target, trail + [target])
                if found:
                    return found
        state[node] = 'done'
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return None


@pytest.mark.parametrize('package', ['durus', 'durus_shell'])
def test_no_import_cycle_even_through_function_level_imports(package):
    graph = _imports(os.path.join(ROOT, package), package)
    # Function-level imports count too: none may exist to hide a cycle.
    assert _cycle(graph) is None


def test_shell_reaches_durus_only_through_public_names():
    """No private durus name (``_x``) and no ``_p_`` slot write from the
    shell's modules (reads of ``obj._p_oid`` style are left to
    durus.inspect as well)."""
    offenders = []
    shell_dir = os.path.join(ROOT, 'durus_shell')
    for filename in sorted(os.listdir(shell_dir)):
        if not filename.endswith('.py'):
            continue
        with open(os.path.join(shell_dir, filename)) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (
                    node.module or '').startswith('durus.'):
                offenders += ['%s: %s.%s' % (filename, node.module, a.name)
                              for a in node.names
                              if a.name.startswith('_')]
            if (isinstance(node, ast.Attribute)
                    and isinstance(node.ctx, ast.Store)
                    and node.attr.startswith('_p_')):
                offenders.append('%s:%d sets %s' % (filename, node.lineno,
                                                    node.attr))
    assert offenders == []


def test_inspect_module_is_documented():
    import durus.inspect
    for name in durus.inspect.__all__:
        value = getattr(durus.inspect, name)
        if pyinspect.isfunction(value):
            assert value.__doc__ or name.startswith('is_'), name
