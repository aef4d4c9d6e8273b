"""Building blocks shared by the distillers and the image synthesis: normalizing images for a
detector, running it as deep as needed, recording submodule outputs, comparing dense heads,
fusing detections, resizing with a Lanczos kernel."""
from .box_fusion import weighted_box_fusion
from .dense_heads import dense_pair_problems, flatten_levels, head_outputs
from .lanczos import lanczos_resize
from .detector_runs import (forward_sources, predict_images, query_samples, record_outputs,
                            shared_features)
from .normalization import denormalize, normalize_like, renormalize
from .pass_counter import PassCounter
from .recorder import ModuleOutputRecorder, resolve_submodule

__all__ = ['ModuleOutputRecorder', 'dense_pair_problems', 'denormalize', 'flatten_levels',
           'forward_sources', 'head_outputs', 'lanczos_resize', 'normalize_like', 'predict_images',
           'query_samples', 'record_outputs', 'renormalize', 'resolve_submodule',
           'shared_features', 'weighted_box_fusion',
           'PassCounter']
