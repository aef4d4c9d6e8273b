"""ModuleOutputRecorder records named submodules' outputs and leaves no hook behind."""
import pytest
import torch
from torch import nn

from mmdfkd.models.utils import ModuleOutputRecorder, resolve_submodule


class _Net(nn.Module):

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(2, 2)
        self.head = nn.Sequential(nn.Linear(2, 1))

    def forward(self, x):
        return self.head(self.first(x))


def test_records_outputs_keeps_the_first_call_and_removes_its_hooks():
    net = _Net()
    x = torch.randn(3, 2)
    with ModuleOutputRecorder(net, ['first', 'head.0', 'first']) as outputs:
        y = net(x)
        net.first(torch.zeros(1, 2))  # a second call does not replace the recorded output
    torch.testing.assert_close(outputs['first'], net.first(x))
    torch.testing.assert_close(outputs['head.0'], y)
    assert not net.first._forward_hooks and not net.head[0]._forward_hooks


def test_an_unknown_name_lists_the_children():
    with pytest.raises(KeyError, match="no submodule 'neck'; its top-level submodules are: "
                       'first, head'):
        ModuleOutputRecorder(_Net(), ['neck'])
    assert isinstance(resolve_submodule(_Net(), 'head.0'), nn.Linear)
