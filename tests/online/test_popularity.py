import numpy as np
import pytest

from pulserec.online.popularity import Popularity

DAY = 86_400.0


def test_trending_halves_after_one_halflife_and_all_time_does_not():
    pop = Popularity(DAY)
    pop.add(0, 4.0, 0.0)
    pop.add(1, 1.0, DAY)
    trend = pop.trending_scores(2)
    assert trend[0] == pytest.approx(2.0)
    assert trend[1] == pytest.approx(1.0)
    assert list(pop.all_time(2)) == [4.0, 1.0]


def test_landmark_rescaling_over_long_spans_is_exact():
    pop = Popularity(DAY)
    ts = np.arange(0, 400) * DAY  # exponents far beyond float range without rescaling
    for t in ts:
        pop.add(0, 1.0, float(t))
    expected = sum(0.5 ** (399 - k) for k in range(400))
    assert pop.trending_scores(1)[0] == pytest.approx(expected)


def test_add_many_equals_add_and_subtract_undoes_it():
    a, b = Popularity(DAY), Popularity(DAY)
    items = np.array([0, 1, 1, 2])
    w = np.array([1.0, 2.0, 3.0, 4.0])
    t = np.array([0.0, DAY, 2 * DAY, 3 * DAY])
    for i, wi, ti in zip(items, w, t):
        a.add(int(i), float(wi), float(ti))
    b.add_many(items, w, t)
    np.testing.assert_allclose(a.trending_scores(3), b.trending_scores(3))
    b.add_many(items[1:2], w[1:2], t[1:2], sign=-1.0)
    assert b.all_time(3)[1] == pytest.approx(3.0)
    assert b.events[1] == 1
