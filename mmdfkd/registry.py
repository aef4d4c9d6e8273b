"""mmdfkd's own registries, for the kinds of things mmdet has no registry for.

Models, losses, datasets and hooks register into mmdet's registries (``mmdet.registry``), so a
config names them as it names mmdet's. Two kinds are this project's own:

- ``DISTILL_TERMS``: how a distillation term of ``DetectionDistiller`` binds a loss to the
  student's and teachers' outputs, one class per ``input_kind`` of loss (feature maps, dense
  head outputs, detections). A new kind of term is one new file registering a class here.
- ``SYNTHESIZERS``: ways of producing synthetic images from the frozen teachers (inversion of
  pixels, a generator network), built by ``ImageSynthesisHook`` and
  ``tools/generate_synthetic.py`` from ``synthesizer=dict(type=...)``.
"""
from mmengine.registry import Registry

DISTILL_TERMS = Registry('distillation term', locations=['mmdfkd.models.distillers.terms'])
SYNTHESIZERS = Registry('image synthesizer', locations=['mmdfkd.models.synthesis'])
