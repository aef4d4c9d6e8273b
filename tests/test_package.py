"""The package imports, and what it exports is registered in mmdet's registries."""
import json
import os

import pytest
from mmdet.registry import (DATASETS, HOOKS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS, TASK_UTILS,
                           TRANSFORMS)

import mmdfkd
import mmdfkd.datasets
import mmdfkd.engine
import mmdfkd.models
from conftest import TEACHER_CONFIG, run_tool
from mmdfkd.version import __version__


def test_version():
    assert mmdfkd.__version__ == __version__
    assert __version__.count('.') == 2


@pytest.mark.parametrize('name', mmdfkd.models.__all__)
def test_models_are_registered_in_mmdet(name):
    assert MODELS.get(name) is getattr(mmdfkd.models, name)


@pytest.mark.parametrize('name', mmdfkd.engine.__all__)
def test_engine_components_are_registered_in_mmdet(name):
    registered = [registry.get(name) for registry in (OPTIM_WRAPPER_CONSTRUCTORS, HOOKS)]
    assert getattr(mmdfkd.engine, name) in registered


@pytest.mark.parametrize('name', mmdfkd.datasets.__all__)
def test_datasets_samplers_and_transforms_are_registered_in_mmdet(name):
    registered = [registry.get(name) for registry in (DATASETS, TASK_UTILS, TRANSFORMS)]
    assert getattr(mmdfkd.datasets, name) in registered


def test_custom_imports_in_a_config_registers_the_package(tmp_path):
    """A fresh process that only reads a config with custom_imports sees mmdfkd's modules."""
    script = tmp_path / 'check.py'
    script.write_text(
        'from mmengine.config import Config\n'
        'from mmdet.registry import MODELS\n'
        f'cfg = Config.fromfile({TEACHER_CONFIG!r})\n'
        'assert cfg.custom_imports.imports == ["mmdfkd"]\n'
        'assert MODELS.get("TimmViT") is not None and MODELS.get("SimpleFeaturePyramid")\n'
        'print("registered")\n')
    result = run_tool([str(script)], cwd=os.getcwd())
    assert result.returncode == 0, result.stderr
    assert 'registered' in result.stdout


def test_importing_the_package_silences_only_the_pkg_resources_warning(tmp_path):
    """mmengine re-imports pkg_resources at every is_installed call; after ``import mmdfkd`` its
    deprecation warning is gone, while other warnings (setuptools' own too) still print."""
    script = tmp_path / 'check.py'
    script.write_text(
        'import warnings\n'
        'import mmdfkd\n'
        'from mmengine.utils import is_installed\n'
        'assert is_installed("mmdet")\n'
        'warnings.warn("pkg_resources is something else", UserWarning)\n'
        'warnings.warn("another warning", UserWarning)\n')
    result = run_tool([str(script)], cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert 'pkg_resources is deprecated' not in result.stderr
    assert 'pkg_resources is something else' in result.stderr
    assert 'another warning' in result.stderr


def test_without_the_package_mmengine_prints_the_pkg_resources_warning(tmp_path):
    """The warning the package silences is real: the check above cannot pass vacuously."""
    result = run_tool(['-c', 'from mmengine.utils import is_installed; is_installed("mmdet")'],
                      cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert 'pkg_resources is deprecated' in result.stderr


_IMPORT_CHANGES = '''
import json, warnings
import torch
import torch.nn.modules.module as torch_module
import mmengine.runner, mmengine.runner.checkpoint, mmengine.runner.runner
# What mmdfkd imports of other packages, imported first: what changes below is mmdfkd's doing.
import mmdet.datasets, mmdet.engine, mmdet.evaluation, mmdet.models, timm
from mmengine.fileio.backends import registry_utils
from mmengine.runner import CheckpointLoader

def state():
    return dict(
        module_hooks={name: list(getattr(torch_module, name)) for name in dir(torch_module)
                      if name.startswith('_global') and isinstance(getattr(torch_module, name),
                                                                   dict)},
        safe_globals=set(map(repr, torch.serialization.get_safe_globals())),
        save_checkpoint=[m.save_checkpoint for m in (mmengine.runner.checkpoint,
                                                     mmengine.runner.runner, mmengine.runner)],
        schemes=dict(CheckpointLoader._schemes), backends=dict(registry_utils.backends),
        prefixes=dict(registry_utils.prefix_to_backends), warnings=list(warnings.filters))

before = state()
import mmdfkd
after = state()
print(json.dumps(dict(
    module_hooks=[k for k in before['module_hooks']
                  if before['module_hooks'][k] != after['module_hooks'][k]],
    safe_globals=sorted(before['safe_globals'] ^ after['safe_globals']),
    save_checkpoint=[a is b for a, b in zip(before['save_checkpoint'], after['save_checkpoint'])],
    schemes={k: v.__name__ for k, v in after['schemes'].items()
             if before['schemes'].get(k) is not v},
    backends={k: v.__name__ for k, v in after['backends'].items()
              if before['backends'].get(k) is not v},
    prefixes=[k for k, v in after['prefixes'].items() if before['prefixes'].get(k) is not v],
    warnings=[[f[0], f[1] and f[1].pattern, f[2].__name__, f[3] and f[3].pattern]
              for f in after['warnings'] if f not in before['warnings']])))
'''


def test_importing_the_package_changes_only_what_the_readme_names():
    """A fresh process: ``import mmdfkd`` registers the checked loader of local checkpoints and
    the atomic_local file backend, and adds one warning filter; torch's module hooks and
    weights-only allow-list, and mmengine's save_checkpoint, stay as they were."""
    result = run_tool(['-c', _IMPORT_CHANGES])  # in the repository root: this checkout's mmdfkd
    assert result.returncode == 0, result.stderr[-3000:]
    changes = json.loads(result.stdout.strip().splitlines()[-1])
    assert changes == dict(module_hooks=[], safe_globals=[], save_checkpoint=[True, True, True],
                           schemes={'': 'load_from_checked_local'},
                           backends={'atomic_local': 'AtomicLocalBackend'}, prefixes=[],
                           warnings=[['ignore', 'pkg_resources is deprecated as an API',
                                      'UserWarning', None]])
