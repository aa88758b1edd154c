"""One direction of imports: models/ builds on neither datasets/ nor engine/, and the tools
import nothing from the tests."""
import ast
import glob
import os.path as osp

import pytest
from helpers import REPO


def imported_modules(path: str, package: str) -> set:
    """Absolute names of the modules a file imports (relative imports resolved)."""
    names = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split('.')[:len(package.split('.')) - node.level + 1] \
                if node.level else []
            module = '.'.join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f'{module}.{alias.name}' for alias in node.names)
    return names


@pytest.mark.parametrize('path', sorted(glob.glob(osp.join(REPO, 'pce_mm/models/*.py'))))
def test_models_import_neither_datasets_nor_engine(path):
    names = imported_modules(path, 'pce_mm.models')
    assert not {n for n in names if n.startswith(('pce_mm.datasets', 'pce_mm.engine'))}


@pytest.mark.parametrize('path', sorted(glob.glob(osp.join(REPO, 'tools/**/*.py'),
                                             recursive=True)))
def test_tools_import_no_test_helpers(path):
    names = imported_modules(path, 'tools')
    assert not {n for n in names if n.split('.')[0] in ('tests', 'helpers', 'conftest')
                or n.startswith('pce_mm.testing')}


def test_the_check_sees_a_relative_import(tmp_path):
    path = tmp_path / 'module.py'               # as if it were pce_mm/models/module.py
    path.write_text('from ..datasets.transforms import black_squares\n')
    assert 'pce_mm.datasets.transforms' in imported_modules(str(path), 'pce_mm.models')
