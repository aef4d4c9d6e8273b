"""checkpoint_fit_problem: a checkpoint whose weights do not all fit the model is named before
mmengine would load it partially."""
import torch
from mmengine.runner import save_checkpoint
from torch import nn

from mmdfkd.utils import checkpoint_fit_problem


def _model(hidden=4):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, hidden), nn.BatchNorm1d(hidden), nn.Linear(hidden, 2))


def _save(state, path):
    save_checkpoint(dict(state_dict=state, meta=dict(note='test')), str(path))
    return str(path)


def test_the_model_own_checkpoint_fits(tmp_path):
    model = _model()
    assert checkpoint_fit_problem(model, _save(model.state_dict(), tmp_path / 'a.pth')) is None


def test_ddp_prefix_and_extra_entries_still_fit(tmp_path):
    model = _model()
    state = {f'module.{k}': v for k, v in model.state_dict().items()}
    state['module.ema.weight'] = torch.zeros(1)  # extra entries are ignored, as mmengine does
    assert checkpoint_fit_problem(model, _save(state, tmp_path / 'a.pth')) is None


def test_weights_of_another_shape_are_named(tmp_path):
    path = _save(_model(hidden=5).state_dict(), tmp_path / 'a.pth')
    problem = checkpoint_fit_problem(_model(hidden=4), path)
    assert problem is not None
    assert 'weights of another shape' in problem
    assert '0.weight (5, 3) vs (4, 3)' in problem


def test_missing_weights_are_counted_and_named(tmp_path):
    model = _model()
    state = {k: v for k, v in model.state_dict().items() if not k.startswith('2.')}
    problem = checkpoint_fit_problem(model, _save(state, tmp_path / 'a.pth'))
    assert problem == (f"2 of the model's {len(model.state_dict())} weights missing "
                       '(e.g. 2.weight, 2.bias)')
