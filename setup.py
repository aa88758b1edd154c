"""Installs pce_mm, the Position Convolution Experts extension for OpenMMLab."""
import re
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
VERSION = re.search(r"__version__ = '(.+)'", (ROOT / 'pce_mm' / 'version.py').read_text()).group(1)


def requirements(name: str) -> list:
    lines = (ROOT / 'requirements' / name).read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith(('#', '-'))]


setup(
    name='pce_mm',
    version=VERSION,
    description='Position Convolution Experts: a routed-convolution backbone for OpenMMLab',
    long_description=(ROOT / 'README.md').read_text(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['pce_mm', 'pce_mm.*']),
    python_requires='>=3.11',
    install_requires=['torch==2.13.0', 'mmcv==2.1.0'] + requirements('runtime.txt'),
    extras_require={'tests': requirements('tests.txt')},
)
