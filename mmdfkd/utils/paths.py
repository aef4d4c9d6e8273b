"""Check, before anything is built, that the files a config reads exist.

``tools/train.py`` and ``tools/test.py`` call :func:`check_config_paths` right after loading the
config. A missing teacher checkpoint or dataset file is then reported at once, in one line per
problem that names the path, where to get the file and the config key to change, instead of
failing minutes later deep inside the Runner. So is a teacher checkpoint variable assigned in a
config after the base config that used it was parsed (it would change nothing).

Only files named in the config are checked: a dataset is checked if its config has an
``ann_file`` (any ``CocoDataset``-like dataset; wrappers with ``dataset``/``datasets`` are
followed), so datasets without files, such as ``SyntheticDetDataset``, are never flagged.
"""
import os
import os.path as osp
from typing import Iterator, List, NamedTuple, Optional

from mmengine.config import Config

from .checkpoint_files import checkpoint_problem
from .config import VariableBinding, assigning_file, variable_binding

# Where the standard COCO 2017 files come from, by the name of the file or folder.
_COCO_ANNOTATIONS = 'http://images.cocodataset.org/annotations/annotations_trainval2017.zip'
DOWNLOADS = {
    'instances_val2017.json': _COCO_ANNOTATIONS,
    'instances_train2017.json': _COCO_ANNOTATIONS,
    'val2017': 'http://images.cocodataset.org/zips/val2017.zip',
    'train2017': 'http://images.cocodataset.org/zips/train2017.zip',
    'test2017': 'http://images.cocodataset.org/zips/test2017.zip',
    'image_info_test-dev2017.json':
        'http://images.cocodataset.org/annotations/image_info_test2017.zip',
}


class MissingFilesError(FileNotFoundError):
    """Files a config needs do not exist, or a teacher checkpoint variable assigned in the
    config does not reach the teacher; ``str(error)`` has one line per problem."""


def _edit_hint(binding: Optional[VariableBinding]) -> str:
    """What to edit besides ``--cfg-options``, given the variable a path came from."""
    if binding is None:
        return ''
    if binding.top:
        return f' (or edit `{binding.name} = ...` at the top of {binding.file or "the config"})'
    return (f' (or edit `{binding.name} = ...` in the base config {binding.file}, for every '
            'config that inherits it; mmengine put its value into the keys when it parsed that '
            f'file, so assigning `{binding.name}` in a config that inherits it changes nothing)')


def missing_checkpoint_message(checkpoint: str, url: Optional[str] = None,
                               key: Optional[str] = None,
                               binding: Optional[VariableBinding] = None) -> str:
    """The one-line error of a teacher checkpoint that does not exist.

    Args:
        checkpoint: The path as configured.
        url: Where the file can be downloaded, if known (e.g. mmdet's model zoo).
        key: The config key of the path, for ``--cfg-options`` (e.g.
            ``model.teachers.0.checkpoint``).
        binding: The config variable the path was set from and the file that set it, if any
            (see :func:`mmdfkd.utils.config.variable_binding`).

    Returns:
        The message: the path, the working directory, where to get the file and what to
        change.
    """
    message = (f'Teacher checkpoint {checkpoint!r} does not exist (working directory: '
               f'{os.getcwd()}).')
    if url:
        message += f' Download it from {url} to {checkpoint}, or point the config to your copy'
    else:
        message += ' Train the teacher first, or point the config to an existing .pth file'
    option = f'--cfg-options {key}=PATH' if key else \
        "the teacher's `checkpoint` (or --cfg-options)"
    return message + f': {option}{_edit_hint(binding)}.'


def _teacher_entry(teacher: dict, checkpoint: str) -> str:
    """``dict(config=..., checkpoint=<checkpoint>, ...)``: a teacher entry as a config line,
    with ``checkpoint`` written as given (e.g. a variable name)."""
    items = [f'{k}={v!r}' if k != 'checkpoint' else f'checkpoint={checkpoint}'
             for k, v in teacher.items()]
    return f'dict({", ".join(items)})'


def _unused_variable_message(cfg: Config, key: str, index: Optional[int],
                             binding: VariableBinding, teachers: list) -> str:
    """Says that a teacher-checkpoint variable was assigned again after a config file had
    already copied it into ``model.teachers``, and how to set the key instead."""
    checkpoint = teachers[index or 0]['checkpoint']
    wanted = cfg[binding.name]
    where = assigning_file(cfg, binding.name, wanted)
    entries = [_teacher_entry(t, binding.name if i == (index or 0) else repr(t['checkpoint']))
               for i, t in enumerate(teachers)]
    listed = entries[0] if index is None else f'[{", ".join(entries)}]'
    copied_by = binding.file if binding.top else f'the base config {binding.file}'
    return (f'`{binding.name} = {wanted!r}` ({f"in {where}" if where else "--cfg-options"}) '
            f'does not reach the teacher: {key} is still {checkpoint!r}, which {copied_by} '
            f'copied from its own `{binding.name}`. mmengine puts a variable into the keys that '
            'use it when it parses that file, so assigning the variable later (in a config that '
            'inherits the file, or by --cfg-options) does not change them. Set the key itself: '
            f'--cfg-options {key}={wanted}, or in {where or "your config"}: '
            f'model = dict(teachers={listed}).')


def check_teacher_checkpoints(cfg: Config) -> List[str]:
    """Problems with the teacher checkpoints of a distiller config (``model.teachers``).

    Three kinds: a ``checkpoint`` that does not exist, one that is a directory, and a
    teacher-checkpoint variable (e.g. ``teacher_checkpoint``) assigned again in a config
    inheriting the base config that used it, which would otherwise leave the teacher on the
    base's checkpoint without a word.

    Args:
        cfg: A loaded config, after ``--cfg-options``.

    Returns:
        One message per problem; empty for a model without teachers.
    """
    model = cfg.get('model')
    teachers = model.get('teachers') if isinstance(model, dict) else None
    if isinstance(teachers, dict):
        entries = [('model.teachers', None, teachers)]
        listed = [teachers]
    elif isinstance(teachers, (list, tuple)):
        entries = [(f'model.teachers.{i}', i, t) for i, t in enumerate(teachers)]
        listed = list(teachers)
    else:
        return []
    problems = []
    for key, index, teacher in entries:
        checkpoint = teacher.get('checkpoint') if isinstance(teacher, dict) else None
        if not isinstance(checkpoint, str):
            continue
        binding = variable_binding(cfg, 'checkpoint', checkpoint,
                                   preferred=('teacher_checkpoint', ))
        assigned = cfg.get(binding.name) if binding is not None else None
        if isinstance(assigned, str) and assigned != checkpoint:
            problems.append(_unused_variable_message(cfg, f'{key}.checkpoint', index, binding,
                                                     listed))
        elif osp.isdir(checkpoint):
            problems.append(f'Teacher checkpoint {checkpoint_problem(checkpoint)}. Give a .pth '
                            f'file: --cfg-options {key}.checkpoint=PATH.')
        elif not osp.isfile(checkpoint):  # (a URL is reported too: teachers load from a file)
            problems.append(missing_checkpoint_message(
                checkpoint, teacher.get('checkpoint_url'), f'{key}.checkpoint', binding))
    return problems


class _File(NamedTuple):
    path: str  # as the dataset or metric will open it
    is_dir: bool
    key: str  # the config key that sets it
    data_root: str  # '' if none applies
    dataset_key: str  # the dataset config that holds it; '' for an evaluator's file


def _dataset_files(dataset: dict, key: str) -> Iterator[_File]:
    """The files a dataset config names; follows dataset wrappers."""
    if not isinstance(dataset, dict):
        return
    if isinstance(dataset.get('dataset'), dict):
        yield from _dataset_files(dataset['dataset'], f'{key}.dataset')
    if isinstance(dataset.get('datasets'), (list, tuple)):
        for i, child in enumerate(dataset['datasets']):
            yield from _dataset_files(child, f'{key}.datasets.{i}')
    ann_file = dataset.get('ann_file')
    if not isinstance(ann_file, str) or not ann_file or dataset.get('backend_args'):
        return  # no files (e.g. SyntheticDetDataset), or not on the local disk
    data_root = dataset.get('data_root') or ''
    if not isinstance(data_root, str):
        return

    def resolve(path: str) -> str:  # as mmengine's BaseDataset joins them
        return path if osp.isabs(path) or not data_root else osp.join(data_root, path)

    yield _File(resolve(ann_file), False, f'{key}.ann_file', data_root, key)
    prefixes = dataset.get('data_prefix') or {}
    for name, prefix in (prefixes.items() if isinstance(prefixes, dict) else ()):
        if isinstance(prefix, str) and resolve(prefix):
            yield _File(resolve(prefix), True, f'{key}.data_prefix.{name}', data_root, key)


def _evaluator_files(evaluator, key: str) -> Iterator[_File]:
    """The ``ann_file`` of each metric of an evaluator config (a dict or a list)."""
    single = isinstance(evaluator, dict)
    for i, metric in enumerate([evaluator] if single else list(evaluator)):
        ann_file = metric.get('ann_file') if isinstance(metric, dict) else None
        if isinstance(ann_file, str) and ann_file and not metric.get('backend_args'):
            yield _File(ann_file, False, f'{key}.ann_file' if single else f'{key}.{i}.ann_file',
                        '', '')


def _exists(file: _File) -> bool:
    if '://' in file.path:
        return True  # a remote backend: not checked here
    return osp.isdir(file.path) if file.is_dir else osp.isfile(file.path)


def _download_hint(missing: List[str], data_root: str) -> str:
    urls = []
    for path in missing:
        url = DOWNLOADS.get(osp.basename(path.rstrip('/\\')))
        if url and url not in urls:
            urls.append(url)
    if not urls:
        return 'Put the dataset there, or point the config to your copy'
    where = f'under {data_root}' if data_root else 'so that the paths above exist'
    return (f'Download {" and ".join(urls)} and unpack them {where}, or point the config to '
            'your copy')


def check_data_files(cfg: Config, loader: str, evaluator: Optional[str] = None) -> List[str]:
    """Problems with the dataset files of one dataloader (and its evaluator).

    Args:
        cfg: A loaded config, after ``--cfg-options``.
        loader: The dataloader key, e.g. ``'val_dataloader'``.
        evaluator: The matching evaluator key, e.g. ``'val_evaluator'``, whose ``ann_file`` is
            checked too.

    Returns:
        One message, or none if every file exists (or the dataset names no file). The message
        names each missing path with its config keys, where to download it (for COCO 2017
        files) and the ``--cfg-options`` keys that point the config elsewhere.
    """
    loader_cfg = cfg.get(loader)
    if not isinstance(loader_cfg, dict):
        return []
    files = list(_dataset_files(loader_cfg.get('dataset'), f'{loader}.dataset'))
    if evaluator and cfg.get(evaluator) is not None:
        files += list(_evaluator_files(cfg.get(evaluator), evaluator))
    missing = [f for f in files if not _exists(f)]
    if not missing:
        return []
    data_root = next((f.data_root for f in missing if f.data_root), '')

    shown: dict = {}  # path as shown -> its config keys
    for f in missing:
        shown.setdefault(f.path.rstrip('/\\') + '/' if f.is_dir else f.path, []).append(f.key)
    listed = ', '.join(f'{path} ({", ".join(keys)})' for path, keys in shown.items())

    options = []
    for f in missing:
        if f.dataset_key and f.data_root:
            option = f'{f.dataset_key}.data_root=DIR/'
        elif data_root and f.path.startswith(data_root):
            option = f'{f.key}=DIR/{f.path[len(data_root):].lstrip("/")}'
        else:
            option = f'{f.key}=PATH'
        if option not in options:
            options.append(option)
    message = (f'{loader} needs files that do not exist (working directory: {os.getcwd()}): '
               f'{listed}. {_download_hint(list(shown), data_root)}: '
               f'--cfg-options {" ".join(options)}')
    binding = variable_binding(cfg, 'data_root', data_root, ('data_root', )) if data_root \
        else None
    return [message + _edit_hint(binding) + '.']


def check_config_paths(cfg: Config, mode: str) -> None:
    """Checks that the files a train or test run reads exist, before the Runner is built.

    ``mode='train'``: teacher checkpoints (see :func:`check_teacher_checkpoints`), the train
    dataloader's files and, if validation runs (``val_cfg``), the val dataloader's and
    evaluator's. ``mode='test'``: teacher checkpoints and the test dataloader's and evaluator's
    files.

    Args:
        cfg: The loaded config, after ``--cfg-options``.
        mode: ``'train'`` or ``'test'``.

    Raises:
        MissingFilesError: If anything is missing, or a teacher checkpoint variable does not
            reach the teacher; one line per problem.
        ValueError: If ``mode`` is not ``'train'`` or ``'test'``.
    """
    if mode not in ('train', 'test'):
        raise ValueError(f"mode must be 'train' or 'test', got {mode!r}.")
    problems = check_teacher_checkpoints(cfg)
    if mode == 'train':
        problems += check_data_files(cfg, 'train_dataloader')
        if cfg.get('val_cfg') and cfg.get('val_dataloader'):
            problems += check_data_files(cfg, 'val_dataloader', 'val_evaluator')
    else:
        problems += check_data_files(cfg, 'test_dataloader', 'test_evaluator')
    if problems:
        raise MissingFilesError('\n'.join(problems))
