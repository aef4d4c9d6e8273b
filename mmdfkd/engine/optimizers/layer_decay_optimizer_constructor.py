"""Layer-wise learning-rate decay for ViT backbones."""
from typing import Dict, List, Optional, Union

from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from torch import nn

from mmdfkd.models.backbones import TimmViT

__all__ = ['LayerDecayOptimWrapperConstructor']


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor plus layer-wise learning-rate decay for :class:`TimmViT`.

    Layer-wise decay (BEiT, ViTDet): in a backbone of n blocks, the learning rate of a parameter
    at depth d is multiplied by ``layer_decay_rate ** (n + 1 - d)``, where d is 0 for the
    embeddings (patch, position, prefix tokens) and i + 1 for block i. Parameters outside the
    ViT (neck, heads) keep the base rate. Every :class:`TimmViT` in the model is handled. The
    other ``paramwise_cfg`` options of mmengine (``norm_decay_mult``, ``bias_decay_mult``,
    ``custom_keys``, ...) apply first, and the decay multiplies the rate they set.

    Example::

        optim_wrapper = dict(
            type='OptimWrapper',
            constructor='LayerDecayOptimWrapperConstructor',
            optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
            paramwise_cfg=dict(
                layer_decay_rate=0.7,
                norm_decay_mult=0.,
                custom_keys={'pos_embed': dict(decay_mult=0.),
                             'cls_token': dict(decay_mult=0.)}))

    Args:
        optim_wrapper_cfg (dict): Optimizer-wrapper config with an ``optimizer`` that sets
            ``lr``.
        paramwise_cfg (dict): mmengine paramwise options plus ``layer_decay_rate`` (float in
            (0, 1]), which is required.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None) -> None:
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        rate = self.paramwise_cfg.get('layer_decay_rate')
        if not isinstance(rate, (int, float)) or not 0 < rate <= 1:
            raise ValueError(
                f'LayerDecayOptimWrapperConstructor needs paramwise_cfg.layer_decay_rate in '
                f'(0, 1], got {rate!r}; e.g. paramwise_cfg=dict(layer_decay_rate=0.7)')
        if self.base_lr is None:
            raise ValueError('LayerDecayOptimWrapperConstructor needs optimizer.lr to be set')
        self.layer_decay_rate = float(rate)

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   is_dcn_module: Optional[Union[int, float]] = None) -> None:
        """Add param groups as mmengine does, then scale the rates of the whole model by depth.

        Args:
            params (list[dict]): Param groups, extended in place.
            module (nn.Module): The module whose parameters are added.
            prefix (str): Name of ``module`` in the model; '' for the model itself.
            is_dcn_module (int | float, optional): See mmengine.
        """
        first = len(params)
        super().add_params(params, module, prefix, is_dcn_module)
        if prefix:  # a recursive call for a submodule; the top-level call scales
            return
        scales = self._lr_scales(module)
        for group in params[first:]:
            (param,) = group['params']
            group['lr'] = group.get('lr', self.base_lr) * scales.get(id(param), 1.)

    def _lr_scales(self, model: nn.Module) -> Dict[int, float]:
        """Learning-rate multipliers of the ViT parameters, keyed by ``id(param)``.

        Raises:
            ValueError: The model has no :class:`TimmViT`.
        """
        vits = [(name, m) for name, m in model.named_modules() if isinstance(m, TimmViT)]
        if not vits:
            raise ValueError(
                f'LayerDecayOptimWrapperConstructor found no TimmViT in {type(model).__name__}; '
                f'use the default constructor for models without a ViT backbone')
        rate = self.layer_decay_rate
        scales = {}
        for name, vit in vits:
            for param_name, param in vit.named_parameters():
                scales[id(param)] = rate**(vit.num_layers + 1 - vit.get_layer_id(param_name))
            print_log(
                f'layer-wise lr decay {rate} on {name or "model"} ({vit.num_layers} blocks): '
                f'lr x{rate**(vit.num_layers + 1):.3g} at the embeddings, x{rate:.3g} at the last '
                f'block, x1 outside the backbone', logger='current')
        return scales
