"""Load configs for the command-line tools the way ``tools/train.py`` and ``tools/test.py`` need,
refuse ``--cfg-options`` that would change nothing, and tell which file of a config's ``_base_``
chain set a value."""
import ast
import inspect
import os
import os.path as osp
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Set, Tuple

from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.utils import get_installed_path, is_installed


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

    Raises:
        ConfigOptionError: If an option sets a variable of the config files that mmengine has
            already substituted into the keys that use it (see
            :func:`substituted_variable_problems`); the message names the keys to set.
    """
    cfg = load_config(path)
    cfg.launcher = launcher
    if cfg_options:
        problems = substituted_variable_problems(cfg, cfg_options)
        if problems:
            raise ConfigOptionError('\n'.join(problems))
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


class ConfigOptionError(ValueError):
    """A ``--cfg-options`` entry that would change nothing; ``str(error)`` has one line per
    entry, naming the keys to set instead."""


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
                visit(_base_file(base, filename))
            except (FileNotFoundError, ModuleNotFoundError, ValueError):
                continue

    visit(path)
    return chain


def _base_file(base: str, filename: str) -> str:
    """The file a ``_base_`` entry of the config ``filename`` names.

    A package config (``mmdet::x.py``) is the file under the package's installed configs, where
    mmengine finds it too, but only after reading every model metafile of the package (about
    a hundred YAML files, each time): that file is taken when it exists.
    """
    package, _, relative = base.partition('::')
    if relative and is_installed(package):
        path = osp.join(get_installed_path(package), '.mim', 'configs', relative)
        if osp.isfile(path):
            return path
    return Config._get_cfg_path(base, filename)[0]


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


# Top-level keys the Runner reads itself (``Runner.from_cfg`` passes them to ``Runner``):
# setting one always has an effect, even where a config file also copies it (e.g.
# ``test_dataloader = val_dataloader``, ``student = {{_base_.model}}``).
_RUNNER_KEYS = frozenset(inspect.signature(Runner.__init__).parameters) - {'self', 'cfg'}


def _base_reference(node: ast.AST) -> Optional[str]:
    """``NAME`` if ``node`` is mmengine's ``{{_base_.NAME}}`` (which Python parses as a set
    holding a set holding ``_base_.NAME``), else None."""
    while isinstance(node, ast.Set) and len(node.elts) == 1:
        node = node.elts[0]
    if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id == '_base_'):
        return node.attr
    return None


def _refers_to(node: ast.AST, name: str) -> bool:
    """Whether ``node`` reads the variable ``name`` (``name`` or ``{{_base_.name}}``)."""
    return (isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Load)
            or _base_reference(node) == name)


def _uses(node: ast.AST, name: str) -> bool:
    """Whether the expression ``node`` reads the variable ``name`` anywhere."""
    return any(_refers_to(child, name) for child in ast.walk(node))


def _copies(tree: ast.Module, name: str) -> Tuple[Set[str], Set[str]]:
    """The key names a parsed config file sets from the variable ``name``.

    Returns:
        ``(direct, derived)``: keys given the variable itself (``key=name``, ``'key': name``,
        ``key = name`` at the top level), and keys given an expression that uses it (e.g.
        ``ann_file=data_root + 'annotations/val.json'``).
    """
    direct: Set[str] = set()
    derived: Set[str] = set()
    pairs = []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg:
            pairs.append((node.arg, node.value))
        elif isinstance(node, ast.Dict):
            pairs += [(key.value, value) for key, value in zip(node.keys, node.values)
                      if isinstance(key, ast.Constant) and isinstance(key.value, str)]
    for statement in tree.body:
        if isinstance(statement, ast.Assign):
            pairs += [(target.id, statement.value) for target in statement.targets
                      if isinstance(target, ast.Name)]
    for key, value in pairs:
        if _refers_to(value, name):
            direct.add(key)
        elif _uses(value, name):
            derived.add(key)
    return direct, derived


def _leaves(node: Any, prefix: str = '') -> Iterator[Tuple[str, Any]]:
    """``(dotted key, value)`` of every key of a nested config, containers included, with list
    items numbered as ``--cfg-options`` numbers them (``model.teachers.0.checkpoint``)."""
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, (list, tuple)):
        items = enumerate(node)
    else:
        return
    for key, value in items:
        path = f'{prefix}.{key}' if prefix else str(key)
        yield path, value
        yield from _leaves(value, path)


def _without_scope(value: Any) -> Any:
    """``value`` without the ``_scope_`` keys mmengine adds to some dicts of a loaded config
    (to a top-level variable's, not to the copy a key holds)."""
    if isinstance(value, dict):
        return {k: _without_scope(v) for k, v in value.items() if k != '_scope_'}
    if isinstance(value, (list, tuple)):
        return type(value)(_without_scope(v) for v in value)
    return value


def _assigns(tree: ast.Module, name: str) -> bool:
    """Whether a parsed config file assigns the top-level variable ``name``."""
    return any(isinstance(statement, ast.Assign) and any(
        isinstance(target, ast.Name) and target.id == name for target in statement.targets)
        for statement in tree.body)


def _option_text(value: Any) -> str:
    """``value`` as ``--cfg-options`` (mmengine's ``DictAction``) reads it back."""
    if isinstance(value, list):
        return '[' + ','.join(_option_text(v) for v in value) + ']'
    if isinstance(value, tuple):
        return '(' + ','.join(_option_text(v) for v in value) + ')'
    return str(value)


def substituted_variable_problems(cfg: Config, options: Dict[str, Any]) -> List[str]:
    """Options that set a variable of the config files, which would change nothing.

    A config file's top-level variable (``teacher_checkpoint``, ``data_root``, ``max_iters``)
    is copied into the keys that use it (``checkpoint=teacher_checkpoint``, or
    ``{{_base_.x}}`` in a file that inherits it) when mmengine parses that file, before
    ``--cfg-options`` apply: setting the variable afterwards leaves those keys as they were,
    without a word. An option is reported if its first component is a top-level key of ``cfg``
    that a file of the config's ``_base_`` chain uses as a variable and that the Runner does
    not read itself (:data:`_RUNNER_KEYS`: ``model``, ``val_dataloader``, ... always count).

    Args:
        cfg: The loaded config, before the options are merged.
        options: ``--cfg-options`` as parsed, ``{'dotted.key': value}``.

    Returns:
        One message per such option: the variable, the file that uses it and the
        ``--cfg-options`` that set the keys it was copied into. Empty for a config built in
        memory, whose files cannot be read.
    """
    trees = list(_parsed_chain(cfg))

    def used_by_substitution(name: str) -> bool:
        return (name in cfg and name not in _RUNNER_KEYS
                and any(_uses(tree, name) for _, tree in trees))

    problems = []
    for option, new in options.items():
        name, _, rest = option.partition('.')
        if not used_by_substitution(name):
            continue
        old = _without_scope(cfg[name])
        # The first file in chain order that assigns the variable is the one whose value holds.
        owner = next((file for file, tree in trees if _assigns(tree, name)), None)
        direct: Set[str] = set()
        derived: Set[str] = set()
        for file, tree in trees:
            copied, built = _copies(tree, name)
            direct |= copied
            derived |= built
        settings = []
        for path, value in _leaves(cfg.to_dict()):
            top, key = path.split('.')[0], path.split('.')[-1]
            if top == name or used_by_substitution(top):
                continue  # another variable: setting it would change nothing either
            if key in direct and _without_scope(value) == old:
                settings.append(f'{path}{"." + rest if rest else ""}={_option_text(new)}')
            elif (key in derived and not rest and isinstance(old, str) and old
                  and isinstance(value, str) and old in value and isinstance(new, str)):
                settings.append(f'{path}={value.replace(old, new)}')
        advice = (f'Set those keys instead: --cfg-options {" ".join(settings)}' if settings
                  else 'Set the keys that use it instead.')
        problems.append(
            f'--cfg-options {option}={_option_text(new)} changes nothing: `{name}` is a '
            f'variable of the config files ({owner or "a base config"} sets it), which mmengine '
            'copied into the keys that use it when it read them, before --cfg-options apply. '
            f'{advice}')
    return problems
