"""K-class classifiers (K logits, labels 0..K-1) and the one label check every entry point runs (issue 22 item 5)."""

import itertools

import pytest
import torch
import torch.nn.functional as F

import toyrobust as tr
from toyrobust.attacks.losses import attack_loss
from toyrobust.classifiers import check_labels, classes_of, label_margin, labels_from_scores

BINARY_MESSAGE = r"y must hold the labels -1 and \+1 .*got 0 at index 0"


def _net(k=4, d=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(d, 16), torch.nn.ReLU(), torch.nn.Linear(16, k)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
    return net


def test_k_class_margin_matches_brute_force():
    gen = torch.Generator().manual_seed(1)
    s = torch.randn(40, 5, generator=gen, dtype=torch.float64)
    s[3, 1] = s[3, 4]  # a tie between the label and another class: margin 0
    y = torch.randint(0, 5, (40,), generator=gen)
    y[3] = 1
    got = label_margin(s, y)
    want = torch.tensor([s[i, y[i]] - max(s[i, j] for j in range(5) if j != y[i]) for i in range(40)],
                        dtype=torch.float64)
    assert torch.equal(got, want) and got[3] == 0
    # binary margins: y * m
    m = torch.randn(10, dtype=torch.float64, generator=gen)
    yb = torch.where(torch.rand(10, generator=gen) > 0.5, 1, -1)
    assert torch.equal(label_margin(m, yb), yb * m)
    # predictions: argmax (ties to the lower label), sign with 0 -> +1
    assert labels_from_scores(torch.tensor([[1.0, 1.0, 0.0]])).tolist() == [0]
    assert labels_from_scores(torch.tensor([0.0, -1.0])).tolist() == [1, -1]


def test_k_class_losses():
    gen = torch.Generator().manual_seed(2)
    s = torch.randn(30, 4, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 4, (30,), generator=gen)
    assert torch.allclose(attack_loss(s, y, "ce"), F.cross_entropy(s, y, reduction="none"))
    assert torch.equal(attack_loss(s, y, "margin"), -label_margin(s, y))
    # two logits with labels -1/+1: the 2-class cross-entropy is softplus(-y m), unchanged
    two = torch.randn(30, 2, generator=gen, dtype=torch.float64)
    yb = torch.where(y >= 2, 1, -1)
    m = two[:, 1] - two[:, 0]
    assert torch.allclose(attack_loss(m, yb, "ce"), F.cross_entropy(two, (yb > 0).long(), reduction="none"))


def test_classes_are_read_from_the_module():
    assert classes_of(tr.Linear([1.0, 2.0])) is None
    assert classes_of(tr.TorchClassifier(torch.nn.Linear(3, 2)), torch.zeros(1, 3)) is None  # two logits: -1/+1
    assert classes_of(tr.TorchClassifier(_net(4)), torch.zeros(1, 3, dtype=torch.float64)) == 4
    assert classes_of(tr.TorchClassifier(torch.nn.Linear(3, 2), n_classes=2)) == 2  # declared: labels 0/1
    assert tr.MLP(3, (8,), n_classes=6).classifier().n_classes == 6
    assert tr.TorchClassifier(tr.MLP(3, (8,))).n_classes is None and tr.TorchClassifier(tr.MLP(3, (8,))).classes_known
    with pytest.raises(ValueError, match="n_classes must be None or an integer >= 2, got 1"):
        tr.TorchClassifier(torch.nn.Linear(3, 2), n_classes=1)
    with pytest.raises(ValueError, match=r"output has 4 columns"):
        tr.TorchClassifier(_net(4)).margin(torch.zeros(2, 3, dtype=torch.float64))


def test_check_labels_names_the_parameter_the_value_and_what_is_allowed():
    assert check_labels([1, -1, 1.0], 3, None).dtype == torch.int64
    assert check_labels(torch.tensor([0.0, 2.0]), 2, 3).tolist() == [0, 2]
    with pytest.raises(ValueError, match=BINARY_MESSAGE):
        check_labels(torch.tensor([0, 1]), 2, None)
    with pytest.raises(ValueError, match=r"y must hold the labels 0\.\.2 \(a classifier with 3 classes\), got -1 at "
                                         r"index 1"):
        check_labels(torch.tensor([0, -1]), 2, 3)
    with pytest.raises(ValueError, match=r"labels 0\.\.2 .*got 0\.5 at index 0"):
        check_labels(torch.tensor([0.5]), 1, 3)
    with pytest.raises(ValueError, match=r"y must have shape \(3,\) to match x, got \(2,\)"):
        check_labels(torch.tensor([1, 1]), 3, None)
    with pytest.raises(TypeError, match="bool"):
        check_labels(torch.tensor([True]), 1, None)


# ------------------------------------------------------------------------------------------ every entry point
def _entry_points():
    dist = tr.Tsipras()
    clf = dist.bayes_classifier()
    x = torch.zeros(1, 2, dtype=torch.float64)
    y0 = torch.tensor([0])
    net = tr.MLP(2, (4,), seed=0, dtype=torch.float64)
    return {
        "is_adversarial ball": lambda: tr.is_adversarial("ball", clf, x, y0, dist=dist),
        "is_adversarial projection": lambda: tr.is_adversarial("projection", clf, x, y0, dist=dist),
        "pgd": lambda: tr.pgd(clf, x, y0, tr.Linf(0.1), generator=0),
        "apgd": lambda: tr.APGD(steps=2).run(clf, x, y0, tr.Linf(0.1), generator=0),
        "fgsm": lambda: tr.fgsm(clf, x, y0, tr.Linf(0.1)),
        "exact": lambda: tr.exact_attack(clf, x, y0, tr.Linf(0.1)),
        "verify": lambda: tr.verify(net, x, y0, tr.Linf(0.1)),
    }


@pytest.mark.parametrize("name", list(_entry_points()))
def test_every_entry_point_refuses_a_zero_label_for_a_binary_classifier(name):
    with pytest.raises(ValueError, match=BINARY_MESSAGE):
        _entry_points()[name]()


def test_training_refuses_a_zero_label():
    net = tr.MLP(2, (4,), seed=0, dtype=torch.float64)
    data = (torch.zeros(2, 2, dtype=torch.float64), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"dataset labels y must hold the labels -1 and \+1.*got 0 at index 0"):
        tr.train(net, tr.Tsipras(), dataset=data, steps=1, batch_size=2)


def test_a_k_class_network_needs_labels_0_to_k_minus_1_everywhere():
    net = _net(4)
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for bad in (torch.tensor([0, 1, 2, 3, 4, 0]), torch.tensor([0, 1, 2, 3, -1, 0])):
        for call in (lambda b=bad: tr.is_adversarial("ball", net, x, b),
                     lambda b=bad: tr.pgd(net, x, b, tr.Linf(0.1)),
                     lambda b=bad: tr.APGD(steps=2).run(net, x, b, tr.Linf(0.1))):
            with pytest.raises(ValueError, match=r"y must hold the labels 0\.\.3 \(a classifier with 4 classes\)"):
                call()
    # a binary distribution's labels cannot be predicted by a 4-class network, nor the reverse
    with pytest.raises(ValueError, match=r"dist has labels -1/\+1 but clf is a classifier with 4 classes"):
        tr.estimate_risk(tr.GaussianMixture([1.0, 0.0, 0.0]), net, tr.Linf(0.1), n=10)
    with pytest.raises(TypeError, match=r"takes binary classifiers .* attacks for K-class classifiers: .*pgd"):
        tr.make_attack("cw").run(net, x, net(x).argmax(1), tr.L2(0.1))


@pytest.mark.parametrize("attack", ["pgd", "apgd", "fgsm"])
@pytest.mark.parametrize("loss", ["margin", "ce"])
def test_k_class_attacks_find_verified_adversarial_points(attack, loss):
    net = _net(4)
    x = torch.randn(200, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    y = net(x).argmax(1)
    threat = tr.Linf(0.5)
    res = tr.make_attack(attack, {"loss": loss}).run(net, x, y, threat, generator=0)
    assert bool(threat.contains(res.x_adv, x).all())
    pred = net(res.x_adv).argmax(1)
    assert torch.equal(res.success, pred != y)
    assert res.success.float().mean() > 0.2
    # the points a brute-force grid search finds adversarial (corners of the ball) are a lower bound for PGD
    if attack != "fgsm":
        corners = torch.tensor(list(itertools.product((-0.5, 0.5), repeat=3)), dtype=torch.float64)
        grid = (x[:, None, :] + corners[None]).reshape(-1, 3)
        brute = (net(grid).argmax(1).reshape(200, 8) != y[:, None]).any(1)
        # (the cross-entropy saturates on confident points: PITFALLS 1, so it may miss a few more)
        assert int((brute & ~res.success).sum()) <= (0.05 if loss == "margin" else 0.1) * int(brute.sum())


def test_two_logits_declared_as_two_classes_take_labels_0_and_1():
    torch.manual_seed(0)
    lin = torch.nn.Linear(2, 2).double()
    clf = tr.TorchClassifier(lin, n_classes=2)
    x = torch.randn(20, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    y = clf.predict(x)
    assert set(y.tolist()) <= {0, 1}
    res = tr.pgd(clf, x, y, tr.L2(5.0), generator=0)
    assert bool(res.success.all())
    with pytest.raises(ValueError, match=r"labels 0\.\.1"):
        tr.pgd(clf, x, torch.where(y == 0, -1, 1), tr.L2(0.1))
