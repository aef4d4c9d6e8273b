"""Silence the one known, harmless warning every tool start would otherwise print.

mmengine 0.10.7 imports (and re-imports, on every ``is_installed`` call) ``pkg_resources``, which
setuptools 80 deprecates with a ``UserWarning`` ("pkg_resources is deprecated as an API"). The
stack pins ``setuptools<81`` on purpose (mmcv and mmengine need ``pkg_resources``), so the warning
tells the user nothing they can act on, yet a run prints it several times and a new user reads it
as an error. Only that message is filtered; every other warning, from setuptools or anything else,
still shows.
"""
import warnings

PKG_RESOURCES_DEPRECATION = r'pkg_resources is deprecated as an API'


def silence_pkg_resources_deprecation() -> None:
    """Filters out setuptools' ``pkg_resources`` deprecation ``UserWarning``; idempotent.

    Called when :mod:`mmdfkd` is imported, so the tools, the tests' subprocesses and configs
    loading the package through ``custom_imports`` are covered.
    """
    warnings.filterwarnings('ignore', message=PKG_RESOURCES_DEPRECATION, category=UserWarning)
