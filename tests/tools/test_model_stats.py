"""tools/model_stats.py: attention FLOPs counted on the CPU, linear cost of windowed attention,
and the JSON report for student, teacher (``mmdet::``) and distiller configs."""
import importlib.util
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from timm.layers import Attention

from conftest import REPO_ROOT, run_tool
from mmdfkd.models.backbones import TimmViT, WindowedAttention
from mmdfkd.utils import load_config

_spec = importlib.util.spec_from_file_location(
    'model_stats', osp.join(REPO_ROOT, 'tools', 'model_stats.py'))
model_stats = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(model_stats)

TINY_STUDENT = osp.join(REPO_ROOT, 'configs', 'students', 'retinanet_deit_tiny_sfp_coco.py')
KEYS = {'params', 'gflops', 'latency_ms', 'model', 'backbone', 'shape', 'input_shape', 'threads'}


def test_one_attention_layer_matches_the_hand_count():
    dim, num_tokens = 64, 50
    attn = Attention(dim, num_heads=4, qkv_bias=True).eval()
    flops = model_stats.count_flops(lambda: attn(torch.randn(1, num_tokens, dim)))
    linear = 2 * num_tokens * dim * 3 * dim + 2 * num_tokens * dim * dim  # qkv, proj
    attention = 2 * (2 * num_tokens * num_tokens * dim)  # q @ k^T, softmax @ v
    assert flops == linear + attention


def test_windowed_attention_matches_the_hand_count():
    dim, (H, W), window, prefix = 64, (8, 12), 4, 1
    attn = WindowedAttention(Attention(dim, num_heads=4, qkv_bias=True), window).eval()
    attn.grid_size = (H, W)
    num_tokens = prefix + H * W
    flops = model_stats.count_flops(lambda: attn(torch.randn(1, num_tokens, dim)))
    linear = 2 * num_tokens * dim * 3 * dim + 2 * num_tokens * dim * dim
    num_windows, queries, keys = (H // window) * (W // window), window**2, prefix + window**2
    windows = 4 * num_windows * queries * keys * dim
    prefix_queries = 4 * prefix * num_tokens * dim
    assert flops == linear + windows + prefix_queries


def test_windowed_backbone_cost_grows_linearly_with_area():
    ratios = {}
    for window_size in (0, 7):
        backbone = TimmViT(out_indices=(1,), window_size=window_size, global_attn_indices=())
        backbone.eval()
        small, large = (model_stats.count_flops(lambda: backbone(torch.randn(1, 3, s, s)))
                        for s in (224, 448))
        ratios[window_size] = large / small
    assert 3.9 < ratios[7] < 4.1  # 4x the area
    assert ratios[0] > 5  # global attention: quadratic term


def test_strip_pretrained_removes_every_weight_reference():
    cfg = dict(type='Det', backbone=dict(
        type='ResNet', init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
        neck=dict(init_cfg=[dict(type='Xavier'), dict(type='Pretrained', checkpoint='x.pth')]),
        head=dict(pretrained='open-mmlab://x', init_cfg=dict(type='Normal')))
    assert model_stats.strip_pretrained(cfg) == dict(
        type='Det', backbone=dict(type='ResNet', init_cfg=None),
        neck=dict(init_cfg=[dict(type='Xavier')]),
        head=dict(pretrained=None, init_cfg=dict(type='Normal')))


def test_cli_prints_json_on_its_last_line():
    result = run_tool(['tools/model_stats.py', TINY_STUDENT, '--shape', '100', '150',
                       '--runs', '1', '--warmup', '0'])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(stats) == KEYS
    assert stats['model'] == 'RetinaNet' and stats['backbone'] == 'deit_tiny_patch16_224'
    assert stats['shape'] == [100, 150] and stats['input_shape'] == [128, 160]  # padded to 32
    assert 7e6 < stats['params'] < 10e6
    assert stats['gflops'] > 0 and stats['latency_ms'] > 0


def test_distiller_config_reports_its_student(tmp_path, capsys):
    # A distiller whose student takes the distiller's data preprocessor (padding to 32).
    student = load_config(TINY_STUDENT).model.to_dict()
    preprocessor = student.pop('data_preprocessor')
    distiller = str(tmp_path / 'distiller.py')
    Config(dict(model=dict(type='NotARegisteredDistiller', data_preprocessor=preprocessor,
                           teachers=dict(type='NotBuiltEither'), student=student))).dump(distiller)
    args = ['--shape', '70', '100', '--runs', '1', '--warmup', '0']
    reported = model_stats.main([distiller] + args)
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == reported
    assert reported['input_shape'] == [96, 128]
    expected = model_stats.main([TINY_STUDENT] + args)
    assert (reported['params'], reported['gflops']) == (expected['params'], expected['gflops'])


def test_mmdet_teacher_config_without_downloads():
    # The base config points at torchvision://resnet50; nothing may be fetched (no network).
    stats = model_stats.main(['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', '--shape', '64',
                              '64', '--runs', '1', '--warmup', '0'])
    assert stats['model'] == 'RetinaNet' and stats['backbone'] == 'ResNet'
    assert stats['params'] == pytest.approx(37.97e6, rel=0.01)
