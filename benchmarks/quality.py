"""Quality benchmark on the demo data: how much of the teacher's mAP each way of training the
same ViT student keeps, and what its synthetic images cost and look like.

    python benchmarks/quality.py [--iters N] [--rows ROW ...] [--seed S] [--data-root DIR]
                                 [--teacher-checkpoint PTH] [--tag NAME]

Rows (same student, same schedule; each evaluated on the real demo val split with pycocotools):

* ``teacher``: the demo's CNN teacher (trained by ``make demo``; its checkpoint must exist);
* ``student_real``: the student trained on the real demo train images, no distillation;
* ``student_real_kd``: the student distilled from the teacher on the real train images;
* ``dfkd_inversion``: data-free, images inverted from the teacher during training;
* ``dfkd_generator``: data-free, images made by a generator network trained during training;
* ``dfkd_images``: data-free, augmented views of inverted images made once before training,
  the teacher run online on each view;
* ``dfkd_bank``: data-free, from the same bank of inverted images with the teacher outputs
  stored with them, so no teacher runs during training;
* ``dfkd_images_mosaic``: as ``dfkd_images``, half of the views a mosaic of four bank images
  (new scenes from the same images, relabeled by the teacher);
* ``dfkd_convstem_images_mosaic``: as ``dfkd_images_mosaic``, with the hybrid ViT student (the
  teacher's stem and first stage, inherited and frozen, under a 4-block ViT; what ``make demo``
  runs); ``student_real_kd_convstem`` is that student's ``student_real_kd``, the row its
  synthetic / real ratio divides by;
* ``dfkd_procedural``: data-free, new procedural (dead-leaves) images every batch, no inversion
  and no teacher pass spent on them;
* ``dfkd_images_procedural``: as ``dfkd_images``, from a stored set of 1024 dead-leaves images
  (no inversion);
* ``dfkd_fourier_images_mosaic``: as ``dfkd_images_mosaic``, the images inverted as Fourier
  spectra (``parameterization='fourier'``) instead of pixels;
* ``dfkd_procedural_mosaic``: as ``dfkd_images_mosaic``, from that set of dead-leaves images;
* ``teacher_rednet26``: the involution teacher (RetinaNet-RedNet-26 at half width, trained by
  ``make demo-rednet-teacher``), evaluated;
* ``student_real_kd_rednet26``: as ``student_real_kd``, from the involution teacher: what it
  teaches on real images;
* ``dfkd_rednet26_images_mosaic``: as ``dfkd_images_mosaic``, from the involution teacher
  alone (images inverted from it, it labels the views);
* ``dfkd_rednet26_fourier_images_mosaic``: as ``dfkd_rednet26_images_mosaic``, the images
  inverted as Fourier spectra (``parameterization='fourier'``) instead of pixels;
* ``dfkd_rednet26_procedural_mosaic``: as ``dfkd_procedural_mosaic``, the views labelled by the
  involution teacher;
* ``dfkd_ensemble_images_mosaic``: as ``dfkd_images_mosaic``, from both teachers (images
  inverted from both, both run online, their terms weighted 0.5 each);
* ``dfkd_ensemble_procedural_mosaic``: as ``dfkd_procedural_mosaic``, the views labelled by
  both teachers;
* ``dfkd_ensemble_bank``: the images inverted from both teachers, stored with both teachers'
  outputs, so training runs neither;
* ``teacher_vit256``: the ViT teacher (the student's detector at twice its width, no
  BatchNorm; trained on the real train images by distillation from the CNN teacher, as DeiT
  was, by ``make demo-vit-teacher``), evaluated;
* ``dfkd_vit256_images_mosaic``: as ``dfkd_images_mosaic``, from the ViT teacher, inverted
  without any BN prior (its detection loss and the image priors: the fallback);
* ``dfkd_vit256_psim_images_mosaic``: the same, inverted with the patch-similarity prior of
  PSAQ-ViT in place of the BN statistics the teacher lacks;
* ``dfkd_vit256_fourier_images_mosaic``: as ``dfkd_vit256_images_mosaic``, the images
  inverted as Fourier spectra;
* ``dfkd_vit256_procedural_mosaic``: as ``dfkd_procedural_mosaic``, the views labelled by the
  ViT teacher;
* ``dfkd_vit256_cnn_images_mosaic``: as ``dfkd_vit256_images_mosaic``, on the CNN teacher's
  inverted images (``make demo``'s bank) instead of the ViT teacher's own.

Rows that need a teacher checkpoint other than the demo teacher's are skipped, with the command
that trains it, until it exists; a row is measured again when such a checkpoint changes. With
the teacher rows of a table of ``TEACHER_COMPARISONS`` measured, the report adds that table: the
retention of its student rows against each of its teachers and against the better one.

A row is one entry of ``ROWS`` (name -> label, config); what kind of row it is follows from its
config: a config with an ``ImageSynthesisHook`` synthesizes during training, one that defines
``bank_root`` trains from a stored bank (made once, by the first bank row that needs it, with
the synthesis config its ``synthesis_config`` names, and shared), any other trains on the real
train images. ``teacher`` is only evaluated.

Columns, per row: bbox mAP and mAP50; **synthetic / real**, its mAP over the ``student_real_kd``
row's (the same student with the same distillation terms on the real train images, plus
the ground truth; ``student_real_kd_nogt`` is the reference without it; the rows of another
student, the hybrid ViT, divide by that student's row, ``REAL_KD_ROWS``);
**retention**, its mAP over the teacher's; for rows with synthetic images, the teacher forward
and backward passes per synthetic image, synthetic images per second and **fidelity** (the
teacher's mAP50 on its own synthetic images against their targets), all read from the bank's
``summary.json`` (``tools/generate_synthetic.py``): the row's bank, or for a row that
synthesizes during training the bank made with the same synthesizer settings (the resolved
synthesizer entries compared), if any; **realism** (:mod:`demo.realism`): the Fréchet distance
between those images and the real val images on pooled backbone features of the
``student_real`` row's checkpoint, with the reference a perfect synthesizer would score (an
equally sized random subset of the real train images); and the time (a bank row's includes
the bank's synthesis). '-' marks what does not apply (real images), 'n/a' what was not measured.

Each student row is validated 4 times during training, for the mAP-against-iteration plot.
Finished rows are kept in ``benchmarks/results/quality.json`` and skipped when the command is
run again with the same settings (data, schedule, seed, and the teacher checkpoint's content)
and their config unchanged (a hash of the resolved config is stored with each row); the rows
``make demo`` measured under the same conditions (teacher, student_real, and the row of its
data-free student's config: dfkd_convstem_images_mosaic) are taken from its ``summary.json``,
and its bank is reused by ``dfkd_bank`` (``--force`` reruns them all). A bank or checkpoint is used
for the figures only while its file is the one the row was made with (a hash of the bank's
``summary.json`` and of the checkpoint is stored). Writes
``quality.json``, ``quality.md`` and ``quality.png`` under ``benchmarks/results/``.

A recipe change has to hold on other demo variants: another seed (``--seed``), or demo data
made with other parameters (``--data-root``, with the teacher trained on it:
``--teacher-checkpoint``). ``--tag NAME`` writes such a run's results to
``quality_NAME.{json,md,png}`` (its runs under ``work_dirs/benchmarks/quality_NAME``), apart
from the main ones. Another teacher: ``--teacher-config`` (its training config, e.g.
``configs/demo/retinanet_r18_frozen_bn_shapes.py``, the teacher shaped like mmdet's) with its
``--teacher-checkpoint``; the teacher row evaluates it, and every distilling row, synthesis
included, learns from it.
"""
import argparse
import functools
import json
import math
import os
import os.path as osp
import re
import shutil
import sys
import time
from typing import Any, Dict, List, Optional

import torch
from mmengine.config import Config

import mmdfkd  # noqa: F401  (registers modules, allows mmengine checkpoints)

# The demo machinery is not part of the installed package: it is tools/demo/ of this checkout.
sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tools'))
from demo.experiment import (DEMO_TEACHER_MODEL, REPO_ROOT, config_fingerprint,  # noqa: E402
                             evaluate, experiment_config, file_fingerprint, synthesize_bank,
                             train, validation_curve)
from demo.realism import RealismMeter, dataset_image_paths  # noqa: E402
from demo.results import results_lock  # noqa: E402

DEMO = osp.join(REPO_ROOT, 'configs', 'demo')
ROWS = {
    'teacher': ('CNN teacher (RetinaNet-R18), real images', 'retinanet_r18_shapes.py'),
    'student_real': ('ViT student, real images, no KD', 'retinanet_deit_tiny_shapes.py'),
    'student_real_kd': ('ViT student, real images + KD', 'kd_deit_tiny_shapes_real.py'),
    'student_real_kd_nogt': ('ViT student, real images + KD, no ground truth (the data-free '
                             'terms exactly)', 'kd_deit_tiny_shapes_real_nogt.py'),
    'dfkd_inversion': ('ViT student, data-free (inversion)', 'dfkd_deit_tiny_shapes.py'),
    'dfkd_competition': ('ViT student, data-free (inversion with the competition term)',
                         'dfkd_competition_deit_tiny_shapes.py'),
    'dfkd_generator': ('ViT student, data-free (generator)',
                       'dfkd_generator_deit_tiny_shapes.py'),
    'dfkd_images': ('ViT student, data-free (stored images, teacher online)',
                    'dfkd_images_deit_tiny_shapes.py'),
    'dfkd_bank': ('ViT student, data-free (stored bank)', 'dfkd_bank_deit_tiny_shapes.py'),
    'dfkd_images_mosaic': ('ViT student, data-free (stored images in mosaics, teacher online)',
                           'dfkd_images_mosaic_deit_tiny_shapes.py'),
    'student_real_kd_convstem': ('hybrid ViT student (the teacher\'s stem, inherited and '
                                 'frozen), real images + KD',
                                 'kd_convstem_deit_tiny_shapes_real.py'),
    'dfkd_convstem_images_mosaic': ('hybrid ViT student (the teacher\'s stem, inherited and '
                                    'frozen), data-free (stored images in mosaics, teacher '
                                    'online)', 'dfkd_convstem_images_mosaic_deit_tiny_shapes.py'),
    'dfkd_images_mosaic_photometric': ('ViT student, data-free (stored images in mosaics, '
                                       'colours randomized, teacher online)',
                                       'dfkd_images_mosaic_photometric_deit_tiny_shapes.py'),
    'dfkd_leaves_refined_images_mosaic': ('ViT student, data-free (dead-leaves images '
                                          'refined by a short inversion, in mosaics, teacher '
                                          'online)',
                                          'dfkd_leaves_refined_images_mosaic_deit_tiny_shapes.py'),
    'dfkd_augmented_images_mosaic': ('ViT student, data-free (images inverted under zoom and '
                                     'colour shift, in mosaics, teacher online)',
                                     'dfkd_augmented_images_mosaic_deit_tiny_shapes.py'),
    'dfkd_procedural': ('ViT student, data-free (new dead-leaves images every batch, no '
                        'inversion)', 'dfkd_procedural_deit_tiny_shapes.py'),
    'dfkd_images_procedural': ('ViT student, data-free (stored dead-leaves images, no '
                               'inversion, teacher online)',
                               'dfkd_images_procedural_deit_tiny_shapes.py'),
    'dfkd_fourier_images_mosaic': ('ViT student, data-free (images inverted as Fourier '
                                   'spectra, in mosaics, teacher online)',
                                   'dfkd_fourier_images_mosaic_deit_tiny_shapes.py'),
    'dfkd_procedural_mosaic': ('ViT student, data-free (stored dead-leaves images in mosaics, '
                               'no inversion, teacher online)',
                               'dfkd_procedural_mosaic_deit_tiny_shapes.py'),
    'teacher_rednet26': ('involution teacher (RetinaNet-RedNet-26, half width), real images',
                         'retinanet_rednet26_shapes.py'),
    'student_real_kd_rednet26': ('ViT student, real images + KD from the involution teacher',
                                 'kd_rednet26_deit_tiny_shapes_real.py'),
    'dfkd_rednet26_images_mosaic': ('ViT student, data-free from the involution teacher '
                                    '(stored images in mosaics, teacher online)',
                                    'dfkd_rednet26_images_mosaic_deit_tiny_shapes.py'),
    'dfkd_rednet26_fourier_images_mosaic': ('ViT student, data-free from the involution '
                                            'teacher (images inverted as Fourier spectra, in '
                                            'mosaics, teacher online)',
                                            'dfkd_rednet26_fourier_images_mosaic_deit_tiny_'
                                            'shapes.py'),
    'dfkd_rednet26_procedural_mosaic': ('ViT student, data-free from the involution teacher '
                                        '(stored dead-leaves images in mosaics, no inversion, '
                                        'teacher online)',
                                        'dfkd_rednet26_procedural_mosaic_deit_tiny_shapes.py'),
    'dfkd_ensemble_images_mosaic': ('ViT student, data-free from both teachers (stored images '
                                    'in mosaics, teachers online)',
                                    'dfkd_ensemble_images_mosaic_deit_tiny_shapes.py'),
    'dfkd_ensemble_procedural_mosaic': ('ViT student, data-free from both teachers (stored '
                                        'dead-leaves images in mosaics, no inversion, teachers '
                                        'online)',
                                        'dfkd_ensemble_procedural_mosaic_deit_tiny_shapes.py'),
    'dfkd_ensemble_bank': ('ViT student, data-free from both teachers (stored bank: no '
                           'teacher runs in training)', 'dfkd_ensemble_bank_deit_tiny_shapes.py'),
    'teacher_vit256': ('ViT teacher (twice the student\'s width, no BN), real images + KD '
                       'from the CNN teacher', 'retinanet_vit256_shapes.py'),
    'dfkd_vit256_images_mosaic': ('ViT student, data-free from the ViT teacher (no BN prior: '
                                  'detection loss and image priors; stored images in mosaics, '
                                  'teacher online)',
                                  'dfkd_vit256_images_mosaic_deit_tiny_shapes.py'),
    'dfkd_vit256_cnn_images_mosaic': ('ViT student, data-free from the ViT teacher on the CNN '
                                      "teacher's inverted images (in mosaics, ViT teacher "
                                      'online)',
                                      'dfkd_vit256_cnn_images_mosaic_deit_tiny_shapes.py'),
    'dfkd_vit256_fourier_images_mosaic': ('ViT student, data-free from the ViT teacher (images '
                                          'inverted as Fourier spectra, in mosaics, teacher '
                                          'online)',
                                          'dfkd_vit256_fourier_images_mosaic_deit_tiny_shapes.py'),
    'dfkd_vit256_procedural_mosaic': ('ViT student, data-free from the ViT teacher (stored '
                                      'dead-leaves images in mosaics, no inversion, teacher '
                                      'online)',
                                      'dfkd_vit256_procedural_mosaic_deit_tiny_shapes.py'),
    'dfkd_vit256_psim_images_mosaic': ('ViT student, data-free from the ViT teacher (with the '
                                       'patch-similarity prior; stored images in mosaics, '
                                       'teacher online)',
                                       'dfkd_vit256_psim_images_mosaic_deit_tiny_shapes.py'),
}
# Teacher rows besides the demo teacher (``teacher``, evaluated from --teacher-checkpoint): the
# checkpoint each is evaluated from (the one the configs that distill from it name) and the
# command that trains it.
OTHER_TEACHERS = {
    'teacher_rednet26': ('work_dirs/demo/teacher_rednet26/iter_1500.pth',
                         'make demo-rednet-teacher'),
    'teacher_vit256': ('work_dirs/demo/teacher_vit256/student.pth', 'make demo-vit-teacher'),
}
# Tables of rows compared teacher by teacher, each (teacher rows, student rows): the retention
# of each student row against each teacher and against the better one, and its mAP over the
# first student row's (the same recipe from the CNN teacher). Convolution against involution,
# alone and together; the CNN teacher against the ViT teacher, without and with the prior for
# teachers without BN.
TEACHER_COMPARISONS = (
    (('teacher', 'teacher_rednet26'),
     ('dfkd_images_mosaic', 'dfkd_fourier_images_mosaic', 'dfkd_procedural_mosaic',
      'student_real_kd_rednet26', 'dfkd_rednet26_images_mosaic',
      'dfkd_rednet26_fourier_images_mosaic', 'dfkd_rednet26_procedural_mosaic',
      'dfkd_ensemble_images_mosaic', 'dfkd_ensemble_bank', 'dfkd_ensemble_procedural_mosaic')),
    (('teacher', 'teacher_vit256'),
     ('dfkd_images_mosaic', 'dfkd_vit256_images_mosaic', 'dfkd_vit256_psim_images_mosaic',
      'dfkd_vit256_cnn_images_mosaic', 'dfkd_vit256_fourier_images_mosaic',
      'dfkd_procedural_mosaic', 'dfkd_vit256_procedural_mosaic')),
)
# The row whose mAP the synthetic / real ratio divides by: the same student with the same
# distillation terms, on the real train images; rows of another student shape divide by that
# student's row (``REAL_KD_ROWS``).
REAL_KD_ROW = 'student_real_kd'
REAL_KD_ROWS = {name: 'student_real_kd_convstem'
                for name in ('student_real_kd_convstem', 'dfkd_convstem_images_mosaic')}
# The row whose checkpoint gives the realism features: trained on the real train images
# without the teacher (see demo/realism.py for why not the teacher).
FEATURE_ROW = 'student_real'
# The synthetic / real ratio and retention the issue asks a data-free recipe to reach.
TARGET = 0.75


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-root', default='data/demo',
                        help='demo data (make demo); another one for a variant')
    parser.add_argument('--teacher-checkpoint', default='work_dirs/demo/teacher/iter_1500.pth',
                        help='the demo teacher (make demo trains it); for demo data of other '
                             'parameters, the teacher trained on them')
    parser.add_argument('--teacher-config', default=None,
                        help="another teacher's training config (default: the teacher row's, "
                             f"configs/demo/{ROWS['teacher'][1]}), e.g. configs/demo/"
                             'retinanet_r18_frozen_bn_shapes.py with its --teacher-checkpoint')
    parser.add_argument('--work-dir', default=None,
                        help='where the rows train (default: work_dirs/benchmarks/quality, '
                             'with _TAG appended for a tagged run)')
    parser.add_argument('--out-dir', default=osp.join(REPO_ROOT, 'benchmarks', 'results'))
    parser.add_argument('--tag', default=None,
                        help='name of a variant: its results go to quality_TAG.json/.md/.png, '
                             'not the main quality.*')
    parser.add_argument('--iters', type=int, default=None,
                        help="training iterations of every student (default: the configs')")
    parser.add_argument('--num-synthetic', type=int, default=None,
                        help="images in the bank (default: the synthesis config's)")
    parser.add_argument('--rows', nargs='+', choices=list(ROWS), default=list(ROWS))
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of training and synthesis (another one for a variant)')
    parser.add_argument('--demo-summary', default='work_dirs/demo/summary.json',
                        help='take the rows `make demo` measured (teacher, student_real, its '
                             'data-free student) from its summary when the data, seed, teacher '
                             'and schedule match')
    parser.add_argument('--force', action='store_true',
                        help='rerun rows already measured (here or by the demo)')
    args = parser.parse_args()
    if args.tag is not None and not re.fullmatch(r'[A-Za-z0-9_-]+', args.tag):
        parser.error(f'--tag must be letters, digits, _ or - (it names files), got {args.tag!r}')
    if args.work_dir is None:
        args.work_dir = 'work_dirs/benchmarks/quality' + (f'_{args.tag}' if args.tag else '')
    if args.teacher_config is not None and not osp.isfile(args.teacher_config):
        parser.error(f'--teacher-config {args.teacher_config} does not exist (give the config '
                     'the teacher was trained with)')
    for path, what in ((args.teacher_checkpoint, 'teacher checkpoint'),
                       (osp.join(args.data_root, 'annotations', 'instances_val.json'),
                        'demo val annotations')):
        if not osp.isfile(path):
            sys.exit(f'error: the {what} {path} does not exist. Run `make demo` first (it '
                     'makes the data and trains the teacher), or pass --teacher-checkpoint / '
                     '--data-root.')
    return args


def results_name(tag: Optional[str]) -> str:
    """The file name, without extension, of a run's results: ``quality`` or
    ``quality_<tag>``."""
    return f'quality_{tag}' if tag else 'quality'


# A row's config, and its fingerprint, as they are when the benchmark starts (loading a config
# takes seconds). A row that trains hashes its config again when it starts.
@functools.lru_cache(maxsize=None)
def _config(name: str) -> Config:
    return Config.fromfile(osp.join(DEMO, ROWS[name][1]))


@functools.lru_cache(maxsize=None)
def _fingerprint(name: str) -> str:
    return config_fingerprint(osp.join(DEMO, ROWS[name][1]))


def synthesizer_entry(cfg: Config) -> Optional[Dict[str, Any]]:
    """The ``synthesizer`` of a config's ``ImageSynthesisHook`` as JSON values (as a bank's
    ``summary.json`` records it), or None without the hook."""
    for hook in cfg.get('custom_hooks', []):
        if hook.get('type') == 'ImageSynthesisHook':
            return json.loads(json.dumps(hook.synthesizer.to_dict()))
    return None


def teacher_configs(cfg: Config) -> List[str]:
    """The files of the teacher configs a distillation config names, as normalized paths."""
    return [osp.normpath(str(teacher['config'])) for teacher in cfg.model.get('teachers', [])]


def row_kind(name: str) -> str:
    """How a row is made, from its config: ``'teacher'`` (evaluated only), ``'online'``
    (images synthesized during training), ``'bank'`` (trains from a stored bank: the config
    defines ``bank_root``) or ``'real'`` (the real train images)."""
    if name == 'teacher' or name in OTHER_TEACHERS:
        return 'teacher'
    cfg = _config(name)
    if synthesizer_entry(cfg) is not None:
        return 'online'
    return 'bank' if 'bank_root' in cfg else 'real'


def other_teacher_checkpoints(name: str) -> List[str]:
    """The checkpoints a row needs besides the demo teacher's: a teacher row of
    ``OTHER_TEACHERS`` its own; a distilling row those of its config's teachers that are not the
    demo teacher (which --teacher-checkpoint gives)."""
    if name in OTHER_TEACHERS:
        return [OTHER_TEACHERS[name][0]]
    return [teacher.checkpoint for teacher in _config(name).model.get('teachers', [])
            if osp.abspath(str(teacher.config)) != DEMO_TEACHER_MODEL]


def other_teachers_record(name: str) -> Dict[str, Optional[str]]:
    """Per checkpoint of :func:`other_teacher_checkpoints`, a hash of its file (None if it
    does not exist): a row is measured again when one of them changes."""
    return {path: file_fingerprint(path) if osp.isfile(path) else None
            for path in other_teacher_checkpoints(name)}


def missing_teacher_message(name: str) -> Optional[str]:
    """Why a row cannot run (a teacher checkpoint it needs does not exist, and what trains
    it), or None."""
    missing = [path for path in other_teacher_checkpoints(name) if not osp.isfile(path)]
    if not missing:
        return None
    commands = sorted({command for checkpoint, command in OTHER_TEACHERS.values()
                       if checkpoint in missing})
    return (f'row {name} skipped: teacher checkpoint {", ".join(missing)} does not exist'
            + (f' (train it: {", ".join(commands)})' if commands else ''))


def bank_fingerprint(bank: str) -> Optional[str]:
    """A hash of a bank's ``summary.json`` (its timing makes it differ for every bank made), or
    None if it has none."""
    path = osp.join(bank, 'summary.json')
    return file_fingerprint(path) if osp.isfile(path) else None


def checkpoint_record(checkpoint: Optional[str]) -> Dict[str, Any]:
    """``checkpoint`` and ``checkpoint_sha`` of a row whose checkpoint is at that path (none
    if the file does not exist)."""
    if not checkpoint or not osp.isfile(checkpoint):
        return {}
    return dict(checkpoint=checkpoint, checkpoint_sha=file_fingerprint(checkpoint))


def bank_for(name: str, args: argparse.Namespace, results: Dict[str, Any]) -> Dict[str, Any]:
    """The synthetic bank of a bank row: one a row (or ``make demo``) already made with the
    row's synthesis config and settings that is still there unchanged, else a new one.

    The synthesis config is the file of ``configs/demo`` the row's config names in
    ``synthesis_config`` (default ``dfkd_deit_tiny_shapes.py``, the demo's inversion). A bank
    is reused if its ``summary.json`` names that config (it decides the teachers: configs with
    the same synthesizer settings invert other teachers) and records the same synthesizer as
    its ``ImageSynthesisHook``. The teachers' checkpoints are those of every row of the results
    (the settings and ``other_teachers`` of a row hold them).

    Returns:
        dict: ``bank``, ``bank_sha``, ``synthesis_s`` and ``synthetic_images``.
    """
    synthesis_cfg = osp.join(DEMO, _config(name).get('synthesis_config',
                                                     'dfkd_deit_tiny_shapes.py'))
    synthesis = Config.fromfile(synthesis_cfg)
    entry = synthesizer_entry(synthesis)
    for row in results['rows'].values():
        if not (row.get('bank') and row.get('bank_sha') == bank_fingerprint(row['bank'])):
            continue
        with open(osp.join(row['bank'], 'summary.json')) as f:
            summary = json.load(f)
        if (summary.get('synthesizer') == entry and summary.get('config')
                and osp.realpath(summary['config']) == osp.realpath(synthesis_cfg)):
            return {k: row[k] for k in ('bank', 'bank_sha', 'synthesis_s',
                                        'synthetic_images')}
    num = args.num_synthetic or synthesis.num_synthetic
    start = time.time()
    out = osp.join(args.work_dir, 'bank_' + osp.splitext(osp.basename(synthesis_cfg))[0])
    shutil.rmtree(out, ignore_errors=True)
    bank = synthesize_bank(synthesis_cfg, out, num, args.teacher_checkpoint, seed=args.seed,
                           teacher_config=args.teacher_config)
    return dict(bank=bank['path'], bank_sha=bank_fingerprint(bank['path']),
                synthesis_s=round(time.time() - start, 1), synthetic_images=num)


def run_row(name: str, args: argparse.Namespace, results: Dict[str, Any]) -> Dict[str, Any]:
    """Trains (students) and evaluates one row; returns its metrics, curve, checkpoint and
    times."""
    config = osp.join(DEMO, ROWS[name][1])
    work_dir = osp.join(args.work_dir, name)
    kind = row_kind(name)
    if kind == 'teacher':
        if name == 'teacher':
            config, checkpoint = args.teacher_config or config, args.teacher_checkpoint
        else:
            checkpoint = OTHER_TEACHERS[name][0]
        cfg = experiment_config(config, work_dir, args.data_root, args.seed)
        start = time.time()
        metrics = evaluate(cfg, checkpoint)
        return dict(metrics, curve=[], eval_s=round(time.time() - start, 1),
                    config_sha=config_fingerprint(config),
                    other_teachers=other_teachers_record(name))
    shutil.rmtree(work_dir, ignore_errors=True)
    cfg = experiment_config(config, work_dir, args.data_root, args.seed, args.iters,
                            teacher_checkpoint=args.teacher_checkpoint,
                            teacher_config=args.teacher_config,
                            train_data_root=args.data_root if kind == 'real' else None)
    cfg.train_cfg.val_interval = max(1, cfg.train_cfg.max_iters // 4)
    row: Dict[str, Any] = dict(config_sha=config_fingerprint(config),
                               other_teachers=other_teachers_record(name))
    if kind == 'bank':
        row.update(bank_for(name, args, results))
        cfg.train_dataloader.dataset.data_root = row['bank']
    start = time.time()
    checkpoint = train(cfg)
    row['train_s'] = round(time.time() - start, 1)
    row['iters'] = cfg.train_cfg.max_iters
    row['curve'] = validation_curve(work_dir)
    row.update(evaluate(cfg, checkpoint))
    row.update(checkpoint_record(checkpoint))
    return row


def _demo_run_seed(entry: Dict[str, Any]) -> Optional[int]:
    """The seed of a training run of ``make demo``: ``randomness.seed`` of the config mmengine
    dumped into the run's work dir (next to its checkpoint), or None if it is not there."""
    dumped = osp.join(osp.dirname(entry.get('checkpoint', '')),
                      osp.basename(entry.get('config', '')))
    if not osp.isfile(dumped):
        return None
    return Config.fromfile(dumped).get('randomness', {}).get('seed')


def _demo_bank(demo: Dict[str, Any]) -> Dict[str, Any]:
    """``bank`` and ``bank_sha`` of the demo's bank if the bank on disk is the one its summary
    describes (same image count and fidelity), else only ``bank``."""
    synthesis = demo['synthesis']
    bank = dict(bank=synthesis['path'])
    path = osp.join(synthesis['path'], 'summary.json')
    if osp.isfile(path):
        with open(path) as f:
            summary = json.load(f)
        if (summary.get('num_images') == synthesis['num_images']
                and summary.get('fidelity', {}).get('bbox_mAP')
                == synthesis.get('teacher_mAP_on_synthetic')):
            bank['bank_sha'] = bank_fingerprint(synthesis['path'])
    return bank


def row_of_config(config: str) -> Optional[str]:
    """The row of ``ROWS`` whose config file has the name of ``config``, or None."""
    return next((name for name, (_, file) in ROWS.items()
                 if file == osp.basename(config)), None)


def rows_from_demo(path: str, iters: int, teacher_sha: str, data_root: str = 'data/demo',
                   seed: int = 0) -> Dict[str, Any]:
    """The rows ``make demo`` already measured (teacher, student_real, and the row of its
    data-free student's config), if its summary at ``path`` used the same data, teacher
    checkpoint and student schedule (and, for the students, seed), each with its config as it
    is now."""
    if not osp.isfile(path):
        return {}
    with open(path) as f:
        demo = json.load(f)
    if (demo.get('student', {}).get('iters') != iters
            or demo['teacher'].get('checkpoint_sha') != teacher_sha
            or osp.abspath(demo.get('data', {}).get('out_dir', '')) != osp.abspath(data_root)):
        return {}
    stages = demo['stages_s']
    entries = dict(teacher=('teacher', {}),
                   student_real=('student_real', dict(iters=iters,
                                                      train_s=stages['student_real_train'])))
    student_row = row_of_config(demo['student'].get('config', ''))
    if student_row is not None:
        entries[student_row] = ('student', dict(
            iters=iters, train_s=stages['student_train'], synthesis_s=stages['synthesis'],
            synthetic_images=demo['synthesis']['num_images'], **_demo_bank(demo)))
    rows = {}
    for name, (key, extras) in entries.items():
        entry = demo[key]
        if ((name != 'teacher' and _demo_run_seed(entry) != seed)
                or entry.get('config_sha') != _fingerprint(name)):
            continue
        rows[name] = dict(bbox_mAP=entry['bbox_mAP'], bbox_mAP_50=entry['bbox_mAP_50'],
                          curve=entry.get('curve', []), config_sha=entry['config_sha'],
                          source=path, **extras)
        if name != 'teacher':
            rows[name].update(checkpoint_record(entry.get('checkpoint')))
    return rows


def synthesis_figures(bank: str) -> Dict[str, Any]:
    """What a bank's ``summary.json`` says about its synthesis: ``images_per_second``,
    ``teacher_forward_per_image`` and ``teacher_backward_per_image`` (None where the summary
    does not have them, e.g. a bank made before they were counted, or no images per second for
    a bank whose images were all made by an interrupted earlier run), ``fidelity_mAP_50``, with
    ``bank`` and ``bank_sha``."""
    with open(osp.join(bank, 'summary.json')) as f:
        summary = json.load(f)
    return dict(bank=bank, bank_sha=bank_fingerprint(bank),
                images_per_second=summary.get('images_per_second'),
                teacher_forward_per_image=summary.get('teacher_forward_per_image'),
                teacher_backward_per_image=summary.get('teacher_backward_per_image'),
                fidelity_mAP_50=summary['fidelity']['bbox_mAP_50'])


def add_synthesis_figures(results: Dict[str, Any]) -> None:
    """Gives every synthetic row without them its bank's synthesis figures
    (:func:`synthesis_figures`), in place: a bank row its own bank's, a row that synthesizes
    during training those of a bank of this run made with the same synthesizer entry for the
    same teachers (a synthesis config that names the same teacher configs). Only banks
    unchanged since their row used them count (``bank_sha``)."""
    rows = results['rows']
    banks = sorted({row['bank'] for row in rows.values()
                    if row.get('bank') and row.get('bank_sha') == bank_fingerprint(row['bank'])})
    for name, row in rows.items():
        if name not in ROWS or 'synthesis' in row:
            continue
        kind = row_kind(name)
        bank = None
        if kind == 'bank' and row.get('bank') in banks:
            bank = row['bank']
        elif kind == 'online':
            entry = synthesizer_entry(_config(name))
            teachers = teacher_configs(_config(name))
            for candidate in banks:
                with open(osp.join(candidate, 'summary.json')) as f:
                    summary = json.load(f)
                if (summary.get('synthesizer') == entry and summary.get('config') and
                        teacher_configs(Config.fromfile(summary['config'])) == teachers):
                    bank = candidate
                    break
        if bank:
            row['synthesis'] = synthesis_figures(bank)


def add_realism(results: Dict[str, Any], args: argparse.Namespace) -> None:
    """Scores the images of every row with synthesis figures (its bank's) against the real val
    images (:class:`demo.realism.RealismMeter`, features of the ``student_real`` row's
    checkpoint), in place, unless the row has a score from the same checkpoint already."""
    features = results['rows'].get(FEATURE_ROW, {})
    sha = features.get('checkpoint_sha')
    if (not sha or not osp.isfile(features['checkpoint'])
            or file_fingerprint(features['checkpoint']) != sha):
        print(f'[quality] realism not measured: there is no {FEATURE_ROW} row, or its '
              'checkpoint is no longer there unchanged (run it: --rows student_real, with '
              '--force if the row exists)')
        return
    todo = [row for row in results['rows'].values()
            if row.get('synthesis') and row.get('realism', {}).get('features_sha') != sha
            and bank_fingerprint(row['synthesis']['bank']) == row['synthesis']['bank_sha']]
    if not todo:
        return

    def paths(dataset: Dict[str, Any]) -> List[str]:
        return dataset_image_paths(dataset['data_root'], dataset['ann_file'],
                                   dataset['data_prefix']['img'])

    config = osp.join(DEMO, ROWS[FEATURE_ROW][1])
    cfg = experiment_config(config, osp.join(args.work_dir, 'realism'), args.data_root,
                            train_data_root=args.data_root)
    meter = RealismMeter(config, features['checkpoint'], paths(cfg.test_dataloader.dataset),
                         paths(cfg.train_dataloader.dataset), seed=args.seed)
    scores: Dict[str, Dict[str, Any]] = {}
    for row in todo:
        bank = row['synthesis']['bank']
        if bank not in scores:
            print(f'[quality] realism of {bank}', flush=True)
            scores[bank] = meter.score(paths(dict(data_root=bank, ann_file='targets.json',
                                                  data_prefix=dict(img='images/'))))
        row['realism'] = dict(scores[bank], features=features['checkpoint'], features_sha=sha)


def report_values(results: Dict[str, Any]) -> Dict[str, Dict[str, Optional[float]]]:
    """Per row of ``ROWS`` in the results: ``ratio`` (its mAP / the ``student_real_kd`` row's,
    or the row ``REAL_KD_ROWS`` names for it) and ``retention`` (its mAP / the teacher's); None
    where the row is the teacher or the divisor is missing or 0."""
    rows = results['rows']

    def over(name: str, reference: str) -> Optional[float]:
        divisor = rows.get(reference, {}).get('bbox_mAP')
        if row_kind(name) == 'teacher' or not divisor:
            return None
        return rows[name]['bbox_mAP'] / divisor

    return {name: dict(ratio=over(name, REAL_KD_ROWS.get(name, REAL_KD_ROW)),
                       retention=over(name, 'teacher'))
            for name in ROWS if name in rows}


def _cells(name: str, row: Dict[str, Any], values: Dict[str, Optional[float]]) -> List[str]:
    """The table cells of one row after its label (see :func:`report_table`)."""
    def number(value: Optional[float], fmt: str) -> str:
        return 'n/a' if value is None else format(value, fmt)

    teacher = row_kind(name) == 'teacher'
    cells = [f"{row['bbox_mAP']:.3f}", f"{row['bbox_mAP_50']:.3f}",
             '-' if teacher else number(values['ratio'], '.2f'),
             '-' if teacher else number(values['retention'], '.2f')]
    if row_kind(name) in ('teacher', 'real'):
        cells += ['-'] * 4
    else:
        synthesis = row.get('synthesis', {})
        forward = synthesis.get('teacher_forward_per_image')
        backward = synthesis.get('teacher_backward_per_image')
        realism = row.get('realism')
        cells += ['n/a' if forward is None or backward is None
                  else f'{forward:.4g} + {backward:.4g}',
                  number(synthesis.get('images_per_second'), '.2f'),
                  number(synthesis.get('fidelity_mAP_50'), '.3f'),
                  f"{realism['fd']:.1f} ({realism['reference_fd']:.1f})" if realism else 'n/a']
    seconds = row.get('train_s', 0) + row.get('synthesis_s', 0)
    return cells + ['-' if teacher else f'{seconds:.0f} s']


def report_table(results: Dict[str, Any]) -> str:
    """The markdown report: settings, the table (see the module docstring) and notes."""
    rows = results['rows']
    values = report_values(results)
    teacher = (f", teacher {results['teacher_config']}" if results.get('teacher_config')
               else '')
    lines = [f"Demo data ({results['data_root']}), student schedule {results['iters']} "
             f"iterations, seed {results.get('seed', 0)}{teacher}; {results['date']}, "
             f"{results['machine']}.", '',
             '| method | bbox mAP | mAP50 | synthetic / real | retention | teacher fwd + bwd '
             '/ image | images / s | fidelity | realism FD (real ref.) | time |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for name in ROWS:
        if name in rows:
            lines.append(f'| {ROWS[name][0]} | ' + ' | '.join(_cells(name, rows[name],
                                                                    values[name])) + ' |')
    borrowed = [f"{ROWS[name][0]}: {rows[name]['synthesis']['bank']}" for name in ROWS
                if name in rows and row_kind(name) == 'online' and rows[name].get('synthesis')]
    realism = next((row['realism'] for row in rows.values() if row.get('realism')), None)
    variants = sorted({reference for name, reference in REAL_KD_ROWS.items() if name in rows})
    lines += ['', f'synthetic / real: mAP over the mAP of "{ROWS[REAL_KD_ROW][0]}" (same '
              'student, same distillation terms and the ground truth, real train images)'
              + ''.join(f'; rows of the student of "{ROWS[reference][0]}": over its mAP'
                        for reference in variants) + '; retention: mAP over the '
              f'teacher\'s; target {TARGET} for both.',
              'Teacher passes per synthetic image, synthetic images per second and fidelity '
              '(teacher mAP50 on its own synthetic images against their targets) from the '
              'bank\'s summary.json' + (' (rows that synthesize during training: the bank made '
                                        'with the same synthesizer settings, '
                                        + '; '.join(borrowed) + ')' if borrowed else '') + '.',
              'realism: Fréchet distance between the synthetic images and the real val images on '
              f'pooled backbone features of the "{ROWS[FEATURE_ROW][0]}" checkpoint (not the '
              'teacher, whose BN statistics the inversion optimizes); in parentheses the FD of '
              'an equally sized random subset of the real train images, what a perfect '
              'synthesizer would score' + (
                  f" ({realism['images']} synthetic or train vs {realism['val_images']} val "
                  'images)' if realism else '') + '.',
              "time: training, plus the bank's synthesis for rows that train from a bank. "
              "'-': does not apply; 'n/a': not measured."]
    return '\n'.join(lines + teacher_comparison(results)) + '\n'


def teacher_comparison(results: Dict[str, Any]) -> List[str]:
    """The lines of the teacher-by-teacher tables of ``TEACHER_COMPARISONS``: per table whose
    teacher rows are all measured, each measured student row with its mAP over each teacher
    row's, over the better teacher's and over the table's first student row's."""
    rows = results['rows']
    lines: List[str] = []
    for teachers, students in TEACHER_COMPARISONS:
        measured = [name for name in students if name in rows]
        if not all(name in rows for name in teachers) or not measured:
            continue
        best = max(teachers, key=lambda name: rows[name]['bbox_mAP'])
        reference = students[0]
        lines += ['', f'Retention teacher by teacher, {" against ".join(teachers)} (mAP over '
                  f'each teacher\'s; the better teacher: {ROWS[best][0]}, '
                  f'{rows[best]["bbox_mAP"]:.3f}; last column: over {reference}, the recipe '
                  'from the CNN teacher):', '',
                  '| method | bbox mAP | ' + ' | '.join(f'/ {name}' for name in teachers)
                  + f' | / better teacher | / {reference} |',
                  '|---|---|' + '---|' * (len(teachers) + 2)]
        for name in measured:
            mAP = rows[name]['bbox_mAP']
            over_reference = (f"{mAP / rows[reference]['bbox_mAP']:.2f}" if reference in rows
                              else 'n/a')
            lines.append(f'| {ROWS[name][0]} | {mAP:.3f} | ' + ' | '.join(
                f"{mAP / rows[t]['bbox_mAP']:.2f}" for t in teachers)
                + f" | {mAP / rows[best]['bbox_mAP']:.2f} | {over_reference} |")
    return lines


def plot_results(results: Dict[str, Any]):
    """The figure of quality.png: the mAP-against-iteration curves, and per student row the
    synthetic / real ratio and the retention as bars with the target line.

    Returns:
        matplotlib.figure.Figure: Its two axes, curves then bars.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = results['rows']
    fig, (curves, bars) = plt.subplots(1, 2, figsize=(12.8, 5.6))
    for name in ROWS:
        curve = rows.get(name, {}).get('curve')
        if curve:
            curves.plot([p['iter'] for p in curve], [p['bbox_mAP'] for p in curve],
                        marker='o', label=ROWS[name][0])
    teacher = rows.get('teacher', {}).get('bbox_mAP')
    if teacher:
        curves.axhline(teacher, color='k', linestyle='--', label=ROWS['teacher'][0])
    curves.set_xlabel('student training iteration')
    curves.set_ylabel('bbox mAP on demo val')
    curves.set_title('ViT student on the shapes demo')
    curves.grid(alpha=0.3)
    curves.legend(fontsize=7, loc='upper center', bbox_to_anchor=(0.5, -0.14), ncol=2)

    values = {name: v for name, v in report_values(results).items()
              if row_kind(name) != 'teacher'}
    width = 0.38
    for offset, key, label in ((-width / 2, 'ratio', f'synthetic / real ({REAL_KD_ROW})'),
                               (width / 2, 'retention', 'retention (/ teacher)')):
        heights = [math.nan if v[key] is None else v[key] for v in values.values()]
        bars.bar([i + offset for i in range(len(values))], heights, width, label=label)
    bars.axhline(TARGET, color='r', linestyle='--', label=f'target {TARGET}')
    bars.set_xticks(range(len(values)))
    bars.set_xticklabels(list(values), rotation=30, ha='right', fontsize=8)
    bars.set_ylabel('mAP ratio')
    bars.set_title('mAP relative to the real-data KD student and the teacher')
    bars.grid(alpha=0.3, axis='y')
    bars.legend(fontsize=7)
    fig.tight_layout()
    return fig


def write_results(results: Dict[str, Any], out_dir: str, name: str = 'quality') -> None:
    """Writes ``NAME.json``, ``NAME.md`` (:func:`report_table`) and ``NAME.png``
    (:func:`plot_results`) under ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, f'{name}.json'), 'w') as f:
        json.dump(results, f, indent=2)
    table = report_table(results)
    with open(osp.join(out_dir, f'{name}.md'), 'w') as f:
        f.write(table)
    print(table)
    fig = plot_results(results)
    fig.savefig(osp.join(out_dir, f'{name}.png'), dpi=120)
    import matplotlib.pyplot as plt
    plt.close(fig)


def main() -> None:
    args = parse_args()
    name = results_name(args.tag)
    path = osp.join(args.out_dir, f'{name}.json')
    if args.iters is None:
        args.iters = _config('student_real').train_cfg.max_iters
    settings = dict(data_root=args.data_root, iters=args.iters,
                    teacher_config=args.teacher_config,
                    teacher_checkpoint=args.teacher_checkpoint,
                    teacher_sha=file_fingerprint(args.teacher_checkpoint), seed=args.seed)
    results: Dict[str, Any] = dict(settings, rows={})
    if not args.force:
        results['rows'] = valid_rows(path, settings, args)
    results.update(tag=args.tag, date=time.strftime('%Y-%m-%d'),
                   machine=f'{os.cpu_count()} CPU cores, torch {torch.__version__}')
    if not args.force:
        for row_name, row in rows_from_demo(args.demo_summary, args.iters,
                                            settings['teacher_sha'], args.data_root,
                                            args.seed).items():
            results['rows'].setdefault(row_name, row)
    todo: List[str] = [r for r in args.rows if r not in results['rows']]
    for row_name in todo:
        message = missing_teacher_message(row_name)
        if message:
            print(f'[quality] {message}', flush=True)
            continue
        print(f'\n===== [quality {time.strftime("%H:%M:%S")}] {row_name} =====', flush=True)
        results['rows'][row_name] = run_row(row_name, args, results)
        # After every row: an interrupted run keeps them.
        save(results, path, settings, args)
    save(results, path, settings, args, realism=True)


def valid_rows(path: str, settings: Dict[str, Any], args: argparse.Namespace) -> Dict[str, Any]:
    """The rows of the results file ``path`` that still hold: measured with these settings,
    their config and other teachers' checkpoints unchanged; none if there is no such file.
    Rows this version of the benchmark has no entry of ``ROWS`` for (written by a newer one,
    e.g. a run started after a row was added, at the same time as this one) are kept as they
    are: this version can neither check nor report them, but must not drop them."""
    if not osp.isfile(path):
        return {}
    with open(path) as f:
        previous = json.load(f)
    if not all(previous.get(k) == v for k, v in settings.items()):
        return {}
    return {row_name: row for row_name, row in previous['rows'].items()
            if row_name not in ROWS or row.get('config_sha') == (
                config_fingerprint(args.teacher_config)
                if row_name == 'teacher' and args.teacher_config else _fingerprint(row_name))
            and row.get('other_teachers', {}) == other_teachers_record(row_name)}


def save(results: Dict[str, Any], path: str, settings: Dict[str, Any],
         args: argparse.Namespace, realism: bool = False) -> None:
    """Writes the results (:func:`write_results`), first adding the valid rows another run of
    this benchmark wrote to the same file since this one read it, so that runs of different
    rows at the same time do not drop each other's rows. A lock next to the file makes the
    read and the write one step. ``realism``: also compute the realism figures
    (:func:`add_realism`), as the end of a run does."""
    with results_lock(path):
        for row_name, row in valid_rows(path, settings, args).items():
            results['rows'].setdefault(row_name, row)
        add_synthesis_figures(results)
        if realism:
            add_realism(results, args)
        write_results(results, args.out_dir, osp.splitext(osp.basename(path))[0])


if __name__ == '__main__':
    main()
