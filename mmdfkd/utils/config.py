"""Load configs for the command-line tools the way ``tools/train.py`` and ``tools/test.py`` need."""
import os
import os.path as osp
from typing import Optional

from mmengine.config import Config


def load_config(path: str) -> Config:
    """Loads a config file, also from a package path such as ``mmdet::retinanet/x.py``.

    ``Config.fromfile`` does not take ``mmdet::`` paths; they are resolved through mmengine's
    package-config lookup (the config files installed with the package).

    Args:
        path: A config file path, or ``PACKAGE::relative/path.py``.

    Returns:
        The loaded config.

    Raises:
        FileNotFoundError: If the file does not exist, naming the path.
    """
    if '::' in path:
        from mmengine.hub import get_config
        try:
            return get_config(path)
        except (FileNotFoundError, ValueError) as exc:
            raise FileNotFoundError(
                f'Config {path!r} was not found in the installed package: {exc}. Check the '
                'spelling of the path below the package\'s configs/ folder.') from exc
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'Config file {path!r} does not exist (working directory: {os.getcwd()}). Give the '
            'path of a config .py file, for example configs/demo/retinanet_r18_shapes.py.')
    cfg = Config.fromfile(path)
    # A distiller resolves relative teacher config paths against the config's directory.
    model = cfg.get('model')
    if isinstance(model, dict) and 'teachers' in model and model.get('config_dir') is None:
        model.config_dir = osp.dirname(osp.abspath(path))
    return cfg


def prepare_config(path: str,
                   work_dir: Optional[str] = None,
                   cfg_options: Optional[dict] = None,
                   launcher: str = 'none') -> Config:
    """Loads a config and applies the options common to the train and test tools.

    Args:
        path: Config path (see :func:`load_config`).
        work_dir: Overrides ``cfg.work_dir``. When neither is set, ``./work_dirs/<config name>``.
        cfg_options: ``key=value`` overrides from ``--cfg-options``.
        launcher: Job launcher, ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.

    Returns:
        The config, ready for ``Runner.from_cfg``.
    """
    cfg = load_config(path)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        name = osp.splitext(osp.basename(path.split('::')[-1]))[0]
        cfg.work_dir = osp.join('./work_dirs', name)
    return cfg


def scale_iter_schedule(cfg: Config, max_iters: int) -> Config:
    """Shortens or lengthens an iteration-based schedule, keeping its shape.

    Sets ``train_cfg.max_iters`` (and validation and checkpoint intervals that equalled the old
    length) to ``max_iters``, and rescales every parameter scheduler's ``begin``/``end`` by the
    same factor, so warm-up and decay keep their share of training.

    Args:
        cfg: A config with an ``IterBasedTrainLoop`` ``train_cfg``; modified in place.
        max_iters: The new number of training iterations, at least 1.

    Returns:
        The same config.

    Raises:
        ValueError: If ``max_iters`` < 1 or the config trains by epoch.
    """
    if max_iters < 1:
        raise ValueError(f'max_iters must be at least 1, got {max_iters}.')
    if 'max_iters' not in cfg.train_cfg:
        raise ValueError('The config trains by epoch (train_cfg has no max_iters); only '
                         'iteration-based schedules (IterBasedTrainLoop) can be rescaled.')
    old = cfg.train_cfg.max_iters
    factor = max_iters / old
    cfg.train_cfg.max_iters = max_iters
    if cfg.train_cfg.get('val_interval', old) >= old:
        cfg.train_cfg.val_interval = max_iters
    checkpoint = cfg.get('default_hooks', {}).get('checkpoint')
    if checkpoint is not None and checkpoint.get('interval', old) >= old:
        checkpoint.interval = max_iters
    schedulers = cfg.get('param_scheduler') or []
    for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
        begin = round(scheduler.get('begin', 0) * factor)
        scheduler.begin = begin
        if 'end' in scheduler:
            scheduler.end = max(begin + 1, round(min(scheduler.end, old) * factor))
    return cfg
