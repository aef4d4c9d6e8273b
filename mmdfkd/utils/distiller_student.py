"""The student of a ``DetectionDistiller`` as a detector of its own: its config and weights.

``tools/export_student.py`` writes them out as a stock mmdet detector; ``tools/test.py``
evaluates the student from them, so it needs neither the teachers nor their checkpoints.
"""
import copy
from typing import Any, Dict

from mmengine.config import ConfigDict

from .checkpoint_fit import checkpoint_weights

# The distiller holds its student as ``self.student``: its weights are saved under this prefix.
STUDENT_PREFIX = 'student.'


def is_distiller_config(model_cfg: Any) -> bool:
    """Whether a model config is a distiller's (it has a ``student``)."""
    return isinstance(model_cfg, dict) and model_cfg.get('student') is not None


def student_model_config(model_cfg: ConfigDict) -> ConfigDict:
    """The model config of a distiller's student, as a detector of its own.

    The distiller preprocesses the batch with its ``data_preprocessor`` (the student's unless
    the distiller config sets one) and hands it to the student, so the student takes that
    preprocessor and predicts exactly as the distiller does with ``predict_with='student'``.

    Args:
        model_cfg: A ``DetectionDistiller`` model config.

    Returns:
        A copy of its ``student`` config, with the distiller's ``data_preprocessor`` if set.
    """
    student = copy.deepcopy(model_cfg.student)
    if model_cfg.get('data_preprocessor') is not None:
        student.data_preprocessor = copy.deepcopy(model_cfg.data_preprocessor)
    return student


def student_weights(checkpoint: Any) -> Dict[str, Any]:
    """The student's weights in a loaded distiller checkpoint, named as in the student.

    Args:
        checkpoint: A loaded checkpoint of a ``DetectionDistiller`` (mmengine's dict with
            ``state_dict``).

    Returns:
        Name -> weight; empty if the checkpoint holds no ``student.*`` weights.
    """
    return checkpoint_weights(checkpoint, STUDENT_PREFIX)
