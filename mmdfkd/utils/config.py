"""Load configs for the command-line tools the way ``tools/train.py`` and ``tools/test.py`` need,
and tell which file of a config's ``_base_`` chain set a value."""
import ast
import os
import os.path as osp
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

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
    return Config.fromfile(path)


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


class VariableBinding(NamedTuple):
    """A config key whose value a config file copied from one of its own top-level variables.

    Attributes:
        name: The variable, e.g. ``'teacher_checkpoint'``.
        file: The config file that assigns the variable and uses it for the key; None for a
            config built in memory.
        top: Whether ``file`` is the loaded config itself, where editing the variable changes
            the key. If not, it is a base config: mmengine substituted the variable when it
            parsed that file, so assigning the variable again in an inheriting config does not
            change the key (nor does ``--cfg-options``, in either case).
    """
    name: str
    file: Optional[str]
    top: bool


def config_chain(path: str) -> List[str]:
    """The config file and the files it inherits from through ``_base_``, recursively.

    Args:
        path: A config file.

    Returns:
        Absolute paths, the file first, then each base followed by its own bases (a file comes
        before the files it inherits from). Bases that cannot be found are left out.
    """
    chain: List[str] = []

    def visit(filename: str) -> None:
        filename = osp.abspath(filename)
        if filename in chain or not osp.isfile(filename):
            return
        chain.append(filename)
        try:
            bases = Config._get_base_files(filename)
        except Exception:  # noqa: BLE001  (a file mmengine cannot parse: its bases are unknown)
            return
        for base in bases:
            try:
                visit(Config._get_cfg_path(base, filename)[0])
            except (FileNotFoundError, ModuleNotFoundError, ValueError):
                continue

    visit(path)
    return chain


def _string_variables(tree: ast.Module) -> Dict[str, str]:
    """The top-level ``NAME = 'text'`` assignments of a parsed config file."""
    found = {}
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            found[node.targets[0].id] = node.value.value
    return found


def _keyword_variables(tree: ast.Module, keyword: str) -> Iterator[str]:
    """Names of the variables passed as ``keyword=NAME`` anywhere in a parsed config file."""
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == keyword and isinstance(
                node.value, ast.Name):
            yield node.value.id


def _parsed_chain(cfg: Config) -> Iterator[Tuple[str, ast.Module]]:
    """``(file, syntax tree)`` of each Python file of ``cfg``'s chain, in
    :func:`config_chain` order; nothing for a config built in memory."""
    filename = getattr(cfg, 'filename', None)
    if not filename or not osp.isfile(filename):
        return
    for file in config_chain(filename):
        if not file.endswith('.py'):
            continue
        try:
            with open(file, encoding='utf-8') as f:
                yield file, ast.parse(f.read())
        except (OSError, SyntaxError, ValueError):
            continue


def variable_binding(cfg: Config, keyword: str, value: str,
                     preferred: Sequence[str] = ()) -> Optional[VariableBinding]:
    """Finds the config file that set a ``keyword=...`` key to ``value`` from a variable.

    mmengine evaluates each file of a ``_base_`` chain on its own, base files first, so
    ``checkpoint=teacher_checkpoint`` in a base config copies that file's own value; a config
    inheriting it may assign ``teacher_checkpoint`` again, which changes the variable but not
    the key. This finds the file whose variable the key holds, so messages can name the file
    to edit, or say that a later assignment had no effect.

    Args:
        cfg: A loaded config. For a config built in memory (no file) its own top-level
            variables holding ``value`` are taken.
        keyword: The key's name as written in the config, e.g. ``'checkpoint'``.
        value: The key's value.
        preferred: Variable names to take first when several hold ``value``.

    Returns:
        The binding: the variable, the file and whether it is the loaded config itself; None if
        no file passes a variable holding ``value`` as ``keyword=``.
    """
    def first(names):
        return sorted(names, key=lambda k: (k not in preferred, k))[0]

    if not getattr(cfg, 'filename', None) or not osp.isfile(cfg.filename):
        names = [k for k, v in cfg.items() if isinstance(v, str) and v == value]
        return VariableBinding(first(names), None, True) if names else None
    for file, tree in _parsed_chain(cfg):
        variables = _string_variables(tree)
        names = {name for name in _keyword_variables(tree, keyword)
                 if variables.get(name) == value}
        if names:
            return VariableBinding(first(names), file, file == osp.abspath(cfg.filename))
    return None


def assigning_file(cfg: Config, name: str, value: str) -> Optional[str]:
    """The file of ``cfg``'s chain whose top-level ``name = value`` is in effect.

    Args:
        cfg: A loaded config.
        name: A top-level variable.
        value: Its value in ``cfg``.

    Returns:
        The first file in :func:`config_chain` order that assigns ``value`` to ``name``; None
        if none does (e.g. it was set by ``--cfg-options``) or ``cfg`` was built in memory.
    """
    return next((file for file, tree in _parsed_chain(cfg)
                 if _string_variables(tree).get(name) == value), None)
