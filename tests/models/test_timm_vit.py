"""TimmViT: timm ViTs by name at any input size, windowed attention, LSA, SPT, conv stems,
freezing, weights."""
import pytest
import timm
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from timm.layers import Attention, PatchEmbed, resample_abs_pos_embed

import mmdfkd.models.backbones.timm_vit as timm_vit_module
from mmdfkd.models.backbones import ShiftedPatchEmbed, TimmViT, WindowedAttention
from mmdfkd.models.backbones.conv_stem_patch_embed import ConvStemPatchEmbed

register_all_modules()


@pytest.mark.parametrize('name,channels', [
    ('deit_tiny_patch16_224', 192), ('deit_small_patch16_224', 384),
    ('vit_tiny_patch16_224', 192), ('vit_small_patch16_224', 384),
    ('vit_base_patch16_224', 768)])
def test_registered_vits_give_nchw_maps_at_any_size(name, channels):
    backbone = MODELS.build(dict(type='TimmViT', model_name=name)).eval()
    assert isinstance(backbone.vit, timm.models.vision_transformer.VisionTransformer)
    assert backbone.out_channels == channels
    with torch.no_grad():
        (out,) = backbone(torch.randn(2, 3, 37, 70))  # not square, not multiples of 16
    assert out.shape == (2, channels, 3, 5)


def test_global_attention_equals_timm_forward_intermediates():
    backbone = TimmViT('deit_tiny_patch16_224', out_indices=(3, -1), window_size=0).eval()
    reference = timm.create_model('deit_tiny_patch16_224', num_classes=0, dynamic_img_size=True,
                                  dynamic_img_pad=True).eval()
    reference.load_state_dict(backbone.vit.state_dict(), strict=False)
    x = torch.randn(1, 3, 75, 101)
    with torch.no_grad():
        expected = reference.forward_intermediates(x, indices=[3, 11], intermediates_only=True)
        outs = backbone(x)
    assert len(outs) == 2
    for out, exp in zip(outs, expected):
        assert out.shape == (1, 192, 5, 7)
        torch.testing.assert_close(out, exp)


def test_windows_covering_the_grid_equal_global_attention_and_smaller_ones_do_not():
    global_vit = TimmViT(window_size=0).eval()
    windowed = TimmViT(window_size=14, global_attn_indices=(11,)).eval()
    windowed.load_state_dict(global_vit.state_dict())  # same keys: timm weights are reused
    assert sum(isinstance(b.attn, WindowedAttention) for b in windowed.vit.blocks) == 11
    with torch.no_grad():
        small = torch.randn(1, 3, 200, 224)  # 13x14 tokens: one window
        torch.testing.assert_close(windowed(small)[0], global_vit(small)[0])
        large = torch.randn(1, 3, 333, 500)  # 21x32 tokens: padded windows
        assert not torch.allclose(windowed(large)[0], global_vit(large)[0], atol=1e-3)


@pytest.mark.parametrize('num_prefix', [0, 2])
def test_windowed_attention_equals_timm_attention_per_window(num_prefix):
    torch.manual_seed(0)
    attn = Attention(32, num_heads=4, qkv_bias=True).eval()
    H, W, ws, B, P = 5, 7, 3, 2, num_prefix  # 5x7 grid: windows padded at bottom and right
    windowed = WindowedAttention(attn, window_size=ws).eval()
    windowed.grid_size = (H, W)
    x = torch.randn(B, P + H * W, 32)
    with torch.no_grad():
        out = windowed(x)
        expected = torch.empty_like(out)
        expected[:, :P] = attn(x)[:, :P]  # prefix tokens attend to everything
        index = torch.arange(H * W).reshape(H, W) + P
        for i in range(0, H, ws):
            for j in range(0, W, ws):
                tokens = index[i:i + ws, j:j + ws].flatten()
                window = torch.cat([x[:, :P], x[:, tokens]], dim=1)
                expected[:, tokens] = attn(window)[:, P:]
    torch.testing.assert_close(out, expected)


def test_windowed_blocks_are_local():
    x = torch.randn(1, 3, 128, 128)  # 8x8 tokens, four 4x4 windows
    changed = x.clone()
    changed[..., :64, :64] += 1  # the top-left window only
    for window_size, expect_local in ((4, True), (0, False)):
        torch.manual_seed(0)
        backbone = TimmViT(out_indices=(0,), window_size=window_size,
                           global_attn_indices=()).eval()
        with torch.no_grad():
            diff = (backbone(x)[0] - backbone(changed)[0]).abs().amax(dim=1)[0]  # (8, 8)
        assert diff[:4, :4].min() > 0
        assert (diff[4:].max() == 0 and diff[:, 4:].max() == 0) == expect_local


@pytest.mark.parametrize('grid,window_size', [((1, 2), 0), ((1, 4), 2)])
def test_lsa_masks_the_diagonal(grid, window_size):
    # With two tokens per attention region and no self-attention, each token's attention output
    # is exactly its partner's value vector.
    attn = WindowedAttention(Attention(32, num_heads=4, qkv_bias=True), window_size, lsa=True)
    attn.grid_size = grid
    x = torch.randn(1, grid[0] * grid[1], 32)
    value = attn.qkv(x)[..., 64:]
    partner = torch.arange(x.shape[1]) ^ 1
    torch.testing.assert_close(attn(x), attn.proj(value[:, partner]))


def test_lsa_temperature_starts_at_sqrt_head_dim_and_learns():
    backbone = TimmViT(out_indices=(1,), lsa=True)
    attns = [block.attn for block in backbone.vit.blocks]
    assert all(isinstance(a, WindowedAttention) for a in attns)
    assert all(a.window_size == 14 for a in attns[:2])
    torch.testing.assert_close(attns[0].log_temperature.exp(), torch.tensor(64.**0.5))
    backbone(torch.randn(1, 3, 64, 64))[0].sum().backward()
    assert all(a.log_temperature.grad.abs() > 0 for a in attns)


def test_spt_tokens_see_half_a_patch_into_their_neighbours():
    torch.manual_seed(0)
    kwargs = dict(img_size=224, patch_size=16, embed_dim=8, dynamic_img_pad=True,
                  strict_img_size=False, output_fmt='NHWC')
    spt, plain = ShiftedPatchEmbed(in_chans=3, **kwargs), PatchEmbed(in_chans=3, **kwargs)
    assert spt.proj.in_channels == 15
    x = torch.rand(1, 3, 32, 32)  # patches (0, 0) and (0, 1)
    near, far = x.clone(), x.clone()
    near[..., 3, 16 + 5] += 1  # 5 px into patch (0, 1): within the 8-px shift
    far[..., 3, 16 + 12] += 1  # 12 px into patch (0, 1): beyond it
    for embed, sees_near in ((spt, True), (plain, False)):
        with torch.no_grad():
            token, near_token, far_token = (embed(t)[0, 0, 0] for t in (x, near, far))
        assert (not torch.equal(token, near_token)) == sees_near
        torch.testing.assert_close(token, far_token, rtol=0, atol=0)


def test_spt_backbone_at_any_size():
    backbone = TimmViT(out_indices=(1,), spt=True)
    assert isinstance(backbone.vit.patch_embed, ShiftedPatchEmbed)
    (out,) = backbone(torch.randn(2, 3, 50, 33))
    assert out.shape == (2, 192, 4, 3)
    out.sum().backward()
    assert backbone.vit.patch_embed.patch_norm.weight.grad.abs().sum() > 0


R18_STEM = dict(type='ResNet', depth=18, num_stages=1, strides=(1,), dilations=(1,),
                out_indices=(0,), frozen_stages=1, norm_eval=True,
                norm_cfg=dict(type='BN', requires_grad=False), init_cfg=None)


def _small_vit(**kwargs) -> TimmViT:
    return TimmViT(window_size=0, timm_kwargs=dict(img_size=64, patch_size=8, depth=2,
                                                   embed_dim=32, num_heads=2), **kwargs)


def test_conv_stem_tokens_are_patches_of_the_stem_map():
    torch.manual_seed(0)
    backbone = _small_vit(conv_stem=R18_STEM).eval()
    embed = backbone.vit.patch_embed
    assert isinstance(embed, ConvStemPatchEmbed)
    assert embed.stem_stride == 4  # conv1 stride 2, max pool stride 2
    assert embed.proj.in_channels == 64 and embed.proj.kernel_size == (2, 2)
    x = torch.randn(2, 3, 50, 70)  # padded to 56 x 72: a 7 x 9 token grid at stride 8
    with torch.no_grad():
        (out,) = backbone(x)
        tokens = embed(x)
        stem_map = embed.stem(torch.nn.functional.pad(x, (0, 2, 0, 6)))[-1]
    assert out.shape == (2, 32, 7, 9)
    assert stem_map.shape == (2, 64, 14, 18)
    # Token (row 3, column 5) is the projection of the stem map's 2 x 2 patch at (6, 10).
    patch = stem_map[:, :, 6:8, 10:12].flatten(1)
    expected = patch @ embed.proj.weight.flatten(1).T + embed.proj.bias
    torch.testing.assert_close(tokens[:, 3, 5], expected, rtol=1e-4, atol=1e-5)


def test_frozen_conv_stem_stays_in_eval_mode_and_the_rest_learns():
    backbone = _small_vit(conv_stem=R18_STEM).train()
    stem = backbone.vit.patch_embed.stem
    assert not stem.bn1.training and not stem.layer1[1].bn2.training
    running_mean = stem.bn1.running_mean.clone()
    backbone(torch.randn(2, 3, 64, 64))[0].square().sum().backward()
    torch.testing.assert_close(stem.bn1.running_mean, running_mean)  # BN statistics kept
    assert all(p.grad is None for p in stem.parameters())
    assert backbone.vit.patch_embed.proj.weight.grad.abs().sum() > 0
    assert backbone.vit.blocks[0].attn.qkv.weight.grad.abs().sum() > 0


def test_conv_stem_configs_that_cannot_work_are_explained():
    with pytest.raises(ValueError, match='spt=False'):
        _small_vit(spt=True, conv_stem=R18_STEM)
    deep_stem = dict(R18_STEM, num_stages=2, strides=(1, 2), dilations=(1, 1), out_indices=(1,))
    with pytest.raises(ValueError, match=r"patch_size 4 is not a multiple.*stride 8"):
        TimmViT(window_size=0, conv_stem=deep_stem, timm_kwargs=dict(patch_size=4))


def test_out_indices_prune_blocks_norm_and_head():
    backbone = TimmViT(out_indices=(1, 3))
    assert backbone.num_layers == len(backbone.vit.blocks) == 4
    assert isinstance(backbone.vit.norm, torch.nn.Identity)
    assert isinstance(backbone.vit.head, torch.nn.Identity)
    outs = backbone(torch.randn(1, 3, 48, 48))
    assert [o.shape for o in outs] == [(1, 192, 3, 3)] * 2
    # Every parameter is used, so DDP needs no find_unused_parameters.
    sum(o.sum() for o in outs).backward()
    assert all(p.grad is not None for p in backbone.parameters())


def test_frozen_stages_freeze_embedding_and_first_blocks():
    backbone = TimmViT(frozen_stages=2)
    backbone.train()
    vit = backbone.vit
    frozen = [vit.pos_embed, vit.cls_token, *vit.patch_embed.parameters(),
              *vit.blocks[0].parameters(), *vit.blocks[1].parameters()]
    assert not any(p.requires_grad for p in frozen)
    assert all(p.requires_grad for p in vit.blocks[2].parameters())
    assert not vit.patch_embed.training and not vit.blocks[1].training
    assert vit.blocks[2].training


def test_drop_path_rate_and_gradient_checkpointing():
    backbone = TimmViT(drop_path_rate=0.2)
    assert backbone.vit.blocks[-1].drop_path1.drop_prob == pytest.approx(0.2)
    assert isinstance(backbone.vit.blocks[0].drop_path1, torch.nn.Identity)

    plain = TimmViT(out_indices=(2,)).train()
    checkpointed = TimmViT(out_indices=(2,), with_cp=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    assert checkpointed.vit.grad_checkpointing
    x = torch.randn(1, 3, 64, 96)
    for model in (plain, checkpointed):
        model(x)[0].square().sum().backward()
    torch.testing.assert_close(checkpointed.vit.blocks[0].attn.qkv.weight.grad,
                               plain.vit.blocks[0].attn.qkv.weight.grad)


def test_invalid_configs_are_explained():
    with pytest.raises(ValueError, match=r'blocks 0\.\.11'):
        TimmViT(global_attn_indices=(12,))
    with pytest.raises(ValueError, match='unknown timm model'):
        TimmViT('deit_tinny_patch16_224')
    with pytest.raises(TypeError, match='VisionTransformer'):
        TimmViT('resnet18')
    with pytest.raises(ValueError, match='Pretrained'):
        TimmViT(init_cfg=dict(type='Kaiming', layer='Conv2d'))
    with pytest.raises(ValueError, match='frozen_stages=5'):
        TimmViT(out_indices=(2,), frozen_stages=5)


@pytest.fixture(scope='module')
def deit_checkpoint(tmp_path_factory):
    """A DeiT-Tiny checkpoint trained at 288x288 (18x18 position grid), in DeiT's release layout
    ({'model': state_dict}) as .pth and as .safetensors."""
    import safetensors.torch
    root = tmp_path_factory.mktemp('ckpt')
    state_dict = timm.create_model('deit_tiny_patch16_224', img_size=288).state_dict()
    torch.save({'model': state_dict}, root / 'deit_tiny_288.pth')
    safetensors.torch.save_file(state_dict, str(root / 'deit_tiny_288.safetensors'))
    return root, state_dict


@pytest.mark.parametrize('suffix', ['pth', 'safetensors'])
def test_pretrained_checkpoint_loads_with_pos_embed_resized(deit_checkpoint, suffix, monkeypatch):
    root, state_dict = deit_checkpoint
    messages = []
    monkeypatch.setattr(timm_vit_module, 'print_log', lambda msg, **kwargs: messages.append(msg))
    backbone = TimmViT(init_cfg=dict(type='Pretrained',
                                     checkpoint=str(root / f'deit_tiny_288.{suffix}')))
    backbone.init_weights()
    vit = backbone.vit
    torch.testing.assert_close(vit.blocks[5].mlp.fc1.weight, state_dict['blocks.5.mlp.fc1.weight'])
    torch.testing.assert_close(vit.cls_token, state_dict['cls_token'])
    assert state_dict['pos_embed'].shape == (1, 1 + 18 * 18, 192)
    expected = resample_abs_pos_embed(state_dict['pos_embed'], (14, 14), num_prefix_tokens=1)
    torch.testing.assert_close(vit.pos_embed, expected)
    (message,) = messages
    assert 'missing (kept initialised): []' in message
    assert "'head.weight'" in message and "'norm.weight'" in message  # pruned, so unexpected


def test_pretrained_shape_mismatch_is_skipped_and_reported(deit_checkpoint, monkeypatch):
    root, state_dict = deit_checkpoint
    messages = []
    monkeypatch.setattr(timm_vit_module, 'print_log', lambda msg, **kwargs: messages.append(msg))
    backbone = TimmViT(spt=True, init_cfg=dict(type='Pretrained',
                                               checkpoint=str(root / 'deit_tiny_288.pth')))
    backbone.init_weights()
    torch.testing.assert_close(backbone.vit.blocks[0].attn.qkv.weight,
                               state_dict['blocks.0.attn.qkv.weight'])
    assert "shape mismatch (ignored): ['patch_embed.proj.weight']" in messages[0]


class _NotATensor:
    pass


def test_pretrained_errors(tmp_path):
    missing = tmp_path / 'nowhere' / 'deit.pth'
    with pytest.raises(FileNotFoundError, match=str(missing)):
        TimmViT(init_cfg=dict(type='Pretrained', checkpoint=str(missing))).init_weights()

    unrelated = tmp_path / 'resnet.pth'
    torch.save(timm.create_model('resnet10t').state_dict(), unrelated)
    with pytest.raises(ValueError, match='matches no parameter'):
        TimmViT(init_cfg=dict(type='Pretrained', checkpoint=str(unrelated))).init_weights()

    unsafe = tmp_path / 'pickled_object.pth'
    torch.save({'model': {'pos_embed': torch.zeros(1)}, 'extra': _NotATensor()}, unsafe)
    with pytest.raises(RuntimeError, match='pickled_object.pth holds pickled objects that are '
                       'not allowed to be loaded'):  # untrusted pickles
        TimmViT(init_cfg=dict(type='Pretrained', checkpoint=str(unsafe))).init_weights()


def test_pretrained_pth_damaged_inside_a_tensor_is_refused(deit_checkpoint, tmp_path):
    root, state_dict = deit_checkpoint
    data = bytearray((root / 'deit_tiny_288.pth').read_bytes())
    offset = bytes(data).index(state_dict['blocks.5.mlp.fc1.weight'].numpy().tobytes()[:64])
    data[offset:offset + 16] = bytes(16)  # timm's torch.load alone would load it silently
    damaged = tmp_path / 'damaged.pth'
    damaged.write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match='damaged.pth.*fails its CRC check'):
        TimmViT(init_cfg=dict(type='Pretrained', checkpoint=str(damaged))).init_weights()
