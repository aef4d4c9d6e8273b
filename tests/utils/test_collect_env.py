"""The environment report names every component of the stack and checks mmcv's ops."""
from conftest import run_tool


def test_collect_env_reports_the_stack():
    result = run_tool(['tools/collect_env.py'])
    assert result.returncode == 0, result.stderr
    report = dict(line.split(': ', 1) for line in result.stdout.splitlines() if ': ' in line)
    for key in ('Python', 'PyTorch', 'PyTorch CUDA', 'CUDA available', 'mmcv', 'mmengine',
                'mmdet', 'timm', 'pycocotools', 'mmdfkd'):
        assert key in report, f'{key} missing from the report'
        assert not report[key].startswith('not available'), f'{key}: {report[key]}'
    assert report['mmcv ops'] == 'ok (nms runs)'
