"""The four definitions of an adversarial example on hand-made cases."""

import pytest
import torch

import toyrobust as tr
from toyrobust.definitions import DEFINITIONS, check_definition


def _pm_case(eps):
    dist = tr.PointMasses(1.0)
    clf = dist.bayes_classifier()  # the max-margin threshold at 1/2
    x = torch.tensor([[0.0]], dtype=torch.float64)
    y = torch.tensor([1])
    return dist, clf, x, y, x + eps


@pytest.mark.parametrize("eps", [0.51, 0.8, 1.0, 3.0])
def test_seed000_point_masses_ball_but_not_projection(eps):
    dist, clf, x, y, x_adv = _pm_case(eps)
    assert tr.is_adversarial("ball", clf, x_adv, y).item()
    assert not tr.is_adversarial("projection", clf, x_adv, y, dist=dist).item()
    assert not tr.is_adversarial("error-region", clf, x_adv, dist=dist).item()
    assert tr.is_adversarial("prediction-change", clf, x_adv, x=x).item()


@pytest.mark.parametrize("eps", [0.0, 0.2, 0.5])
def test_point_masses_small_moves_are_not_adversarial(eps):
    dist, clf, x, y, x_adv = _pm_case(eps)
    for d in DEFINITIONS:
        assert not tr.is_adversarial(d, clf, x_adv, y, dist=dist, x=x).item(), d


def test_projection_adversarial_for_a_bad_threshold():
    # threshold at 0.2: moving 0 to 0.3 fools it while the true label (projection to 0) stays +1
    dist = tr.PointMasses(1.0)
    clf = tr.Linear([-1.0], 0.2)
    y = torch.tensor([1])  # x = 0
    x_adv = torch.tensor([[0.3]])
    assert tr.is_adversarial("projection", clf, x_adv, y, dist=dist).item()
    assert tr.is_adversarial("error-region", clf, x_adv, dist=dist).item()


def test_spheres_moving_outer_point_onto_inner_sphere_is_not_projection_adversarial():
    dist = tr.ConcentricSpheres(10, 1.0, 1.3)
    clf = dist.bayes_classifier()
    x, y = dist.sample(50, generator=0, dtype=torch.float64)
    outer = y == 1
    x, y = x[outer], y[outer]
    x_adv = x / 1.3  # now on the inner sphere: its true label has changed
    assert tr.is_adversarial("ball", clf, x_adv, y).all()
    assert not tr.is_adversarial("projection", clf, x_adv, y, dist=dist).any()
    assert not tr.is_adversarial("error-region", clf, x_adv, dist=dist).any()
    # an inaccurate radial classifier (r = 1.2) is fooled on the outer side without a label change
    bad = tr.Radial(1.2)
    x_in = x * (1.19 / 1.3)
    assert tr.is_adversarial("projection", bad, x_in, y, dist=dist).all()


def test_tsipras_seed000_move_is_ball_but_not_projection_adversarial():
    dist = tr.Tsipras(0.9, 3.0, 1)
    clf = dist.bayes_classifier()
    y = torch.tensor([1])  # x = (-1, 3)
    x_adv = torch.tensor([[-1.0, -3.0]], dtype=torch.float64)
    assert tr.is_adversarial("ball", clf, x_adv, y).item()
    assert not tr.is_adversarial("projection", clf, x_adv, y, dist=dist).item()


def test_error_region_counts_disagreement_with_truth_regardless_of_y():
    dist = tr.GaussianMixture([1.0, 0.0])
    clf = tr.Linear([0.0, 1.0])
    x_adv = torch.tensor([[1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    assert tr.is_adversarial("error-region", clf, x_adv, dist=dist).tolist() == [True, False, True]


def test_definition_argument_errors():
    clf = tr.Linear([1.0])
    x = torch.zeros(2, 1)
    with pytest.raises(ValueError, match="definition must be one of"):
        check_definition("bal")
    with pytest.raises(ValueError, match="labels y"):
        tr.is_adversarial("ball", clf, x)
    with pytest.raises(ValueError, match="dist"):
        tr.is_adversarial("projection", clf, x, torch.ones(2))
    with pytest.raises(ValueError, match="original points x"):
        tr.is_adversarial("prediction-change", clf, x)
    with pytest.raises(ValueError, match="shape"):
        tr.is_adversarial("ball", clf, x, torch.ones(3))
