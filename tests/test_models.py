"""Model zoo: parameter budget, shapes for 1 and 3 channels, the SimpleCNN layout, bad names."""

import pytest
import torch
from torch import nn

from poisonlab.training import models
from poisonlab.errors import PoisonlabError


@pytest.mark.parametrize("shape, k", [((28, 28, 1), 10), ((32, 32, 3), 10), ((32, 32, 3), 100), ((8, 8, 1), 10)])
def test_smallcnn_stays_under_100k_parameters_and_outputs_k_logits(shape, k):
    model = models.build("smallcnn", shape, k)
    assert models.count_parameters(model) < 100_000
    h, w, c = shape
    assert model(torch.zeros(4, c, h, w)).shape == (4, k)


def test_simplecnn_is_the_classic_layout():
    model = models.build("simplecnn", (32, 32, 3), 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [c.out_channels for c in convs] == [32, 64, 128] and all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(128 * 4 * 4, 512), (512, 10)]
    assert any(isinstance(m, nn.Dropout) and m.p == 0.5 for m in model.modules())
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert models.build("simplecnn", (28, 28, 1), 10)(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_sklearn_models_match_the_classic_settings():
    assert models.build("svc", (8, 8, 1), 10).random_state == 42
    assert models.build("logreg", (8, 8, 1), 10).max_iter >= 1000


def test_bad_model_names_and_sizes():
    with pytest.raises(PoisonlabError, match="unknown model 'resnet'"):
        models.build("resnet", (28, 28, 1), 10)
    with pytest.raises(PoisonlabError, match="at least 8x8"):
        models.build("simplecnn", (4, 4, 1), 10)
