"""The set-up scripts: what decides a fresh set-up, and the failure a fresh machine once hit.

The whole set-up (an mmcv compile of about 25 minutes) is exercised by .ci/run itself whenever
its inputs change (scripts/fresh_setup.sh); these tests cover the parts that decide and guard it.
"""
import os
import os.path as osp
import shutil
import subprocess
import sys

from conftest import REPO_ROOT


def _setup_hash(root: str) -> str:
    result = subprocess.run(['bash', 'scripts/setup_hash.sh'], cwd=root, capture_output=True,
                            text=True, check=True)
    return result.stdout.strip()


def _copy_setup_inputs(dst: str) -> str:
    for name in ('requirements.txt', 'setup.py'):
        shutil.copy(osp.join(REPO_ROOT, name), dst)
    shutil.copytree(osp.join(REPO_ROOT, 'scripts'), osp.join(dst, 'scripts'))
    return dst


def test_setup_hash_covers_requirements_setup_py_and_every_script(tmp_path):
    root = _copy_setup_inputs(str(tmp_path))
    base = _setup_hash(root)
    assert len(base) == 64 and base == _setup_hash(root)
    changed = []
    for name in ('requirements.txt', 'setup.py', 'scripts/build_mmcv.sh'):
        path = osp.join(root, name)
        original = open(path).read()
        with open(path, 'a') as f:
            f.write('\n# changed\n')
        changed.append(_setup_hash(root))
        with open(path, 'w') as f:
            f.write(original)
    with open(osp.join(root, 'scripts', 'new_step.sh'), 'w') as f:
        f.write('true\n')
    changed.append(_setup_hash(root))
    assert base not in changed and len(set(changed)) == len(changed)


def test_build_mmcv_refuses_a_python_without_pkg_resources(tmp_path):
    """What a fresh machine hit: mmcv's setup.py run by a setuptools without pkg_resources. The
    script now checks the build tools first and says how to install the pinned ones."""
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True)
    result = subprocess.run(
        ['bash', osp.join(REPO_ROOT, 'scripts', 'build_mmcv.sh'), str(venv / 'bin' / 'python')],
        capture_output=True, text=True, env={**os.environ, 'MMDFKD_CACHE': str(tmp_path / 'c')},
        timeout=120)
    assert result.returncode == 1
    assert 'has no pkg_resources' in result.stdout
    assert "pip install 'setuptools==80.10.2'" in result.stdout
    assert not (tmp_path / 'c').exists()  # nothing was downloaded or built


def test_every_setup_pip_call_is_pinned_and_builds_without_isolation():
    """No pip call of the set-up may let the registry's newest build tools in: requirements are
    installed from wheels only, and sdists are prepared with the environment's pinned setuptools."""
    with open(osp.join(REPO_ROOT, 'scripts', 'setup_env.sh')) as f:
        setup_env = f.read()
    with open(osp.join(REPO_ROOT, 'scripts', 'build_mmcv.sh')) as f:
        build_mmcv = f.read()
    for line in setup_env.splitlines():
        if ' install ' in line and '-r ' in line:
            assert '--only-binary :all:' in line, line
        elif ' install ' in line and '-e .' in line:
            assert '--no-build-isolation' in line, line
    pip_calls = [line for line in build_mmcv.replace('\\\n', ' ').splitlines()
                 if '-m pip download' in line or '-m pip wheel' in line]
    assert len(pip_calls) == 2
    assert all('--no-build-isolation' in line for line in pip_calls), pip_calls
    with open(osp.join(REPO_ROOT, 'requirements.txt')) as f:
        assert any(line.startswith('setuptools==80.') for line in f)
