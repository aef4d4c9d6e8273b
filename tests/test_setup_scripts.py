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


_FAKE_PYTHON = r'''#!/usr/bin/env bash
# Stands in for the environment's Python: answers build_mmcv.sh's calls without torch or a
# compiler; the "compile" takes a few seconds and leaves object files, as the real one does.
set -e
case "$1 $2 $3" in
  "-c import pkg_resources "*) exit 0 ;;
  "-c "*) exit 1 ;;  # mmcv is not installed yet
  "-m pip download")
    out="${@: -1}"; src="$(mktemp -d)/mmcv-2.1.0"; mkdir -p "$src"
    echo "flags = ['-std=c++14', '-std=c++17']" > "$src/setup.py"
    tar -czf "$out/mmcv-2.1.0.tar.gz" -C "$(dirname "$src")" mmcv-2.1.0 ;;
  "-m pip wheel")
    grep -q 'c++20' setup.py
    mkdir -p build/temp; for i in 1 2 3 4; do sleep 1; touch build/temp/op$i.o; done
    while [[ "$1" != -w ]]; do shift; done
    mkdir -p "$2"; touch "$2/mmcv-2.1.0-cp311-cp311-linux_x86_64.whl" ;;
  "-m pip install") echo "installed ${@: -1}" ;;
  "- "*)
    code="$(cat)"
    if [[ "$code" == *torch.version.cuda* ]]; then echo cp311 2.14.1 cpu
    else echo "[build_mmcv] mmcv.ops.nms works (cuda=False)"; fi ;;
  *) echo "unexpected call: $*" >&2; exit 3 ;;
esac
'''


def test_build_mmcv_builds_caches_and_reports_progress(tmp_path):
    """The build path end to end, with a stand-in Python: the -std flags are patched, the build
    prints progress lines while it runs and nothing else (no "Terminated" when the progress loop
    stops), the wheel is cached and installed, and the script exits 0. A second run reuses the
    cached wheel."""
    fake = tmp_path / 'python'
    fake.write_text(_FAKE_PYTHON)
    fake.chmod(0o755)
    env = {**os.environ, 'MMDFKD_CACHE': str(tmp_path / 'cache'), 'HEARTBEAT_S': '1',
           'MMDFKD_VERIFY_SDIST': '0'}
    script = osp.join(REPO_ROOT, 'scripts', 'build_mmcv.sh')
    result = subprocess.run(['bash', script, str(fake)], capture_output=True, text=True, env=env,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'Terminated' not in result.stdout + result.stderr
    progress = [line for line in result.stdout.splitlines() if 'still compiling' in line]
    assert len(progress) >= 2, result.stdout
    wheel = (tmp_path / 'cache' / 'wheels' / 'mmcv-2.1.0-torch2.14.1-cpu-cp311'
             / 'mmcv-2.1.0-cp311-cp311-linux_x86_64.whl')
    assert wheel.is_file() and f'installed {wheel}' in result.stdout
    assert 'mmcv.ops.nms works' in result.stdout

    again = subprocess.run(['bash', script, str(fake)], capture_output=True, text=True, env=env,
                           timeout=60)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f'reusing cached wheel {wheel}' in again.stdout
    assert 'still compiling' not in again.stdout
