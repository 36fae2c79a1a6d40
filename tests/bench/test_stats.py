"""Unit tests of tests/hplib/stats.py on canned data: medians, the
distribution-free interval of the median, the Mann-Whitney U test (against
values computed by hand and, where Debian's python3-scipy is installed,
against scipy.stats.mannwhitneyu), the before/after verdict and the
saturation point of a rate schedule."""

import math
import random

import pytest

from hplib import stats as bs


def test_median_odd_even_and_empty():
    assert bs.median([3, 1, 2]) == 2
    assert bs.median([4, 1, 3, 2]) == 2.5
    with pytest.raises(ValueError):
        bs.median([])


def test_median_present_skips_missing_runs():
    # A run that measured nothing records None; the report's medians skip it.
    assert bs.median_present([4, None, 1, 3, 2]) == 2.5
    assert bs.median_present([None, None]) is None
    assert bs.median_present([]) is None


def test_percentile_nearest_rank():
    xs = list(range(1, 102))  # 1..101: the p-th percentile is p + 1
    assert bs.percentile(xs, 0) == 1 and bs.percentile(xs, 50) == 51 and bs.percentile(xs, 99) == 100
    assert bs.percentile(xs, 100) == 101 and bs.percentile([7], 99) == 7
    assert bs.percentile([], 50) is None


def test_median_ci_coverage_from_the_binomial():
    # n = 5: even [min, max] covers the median with 1 - 2/32 = 93.75% only.
    lo, hi, cov = bs.median_ci([5, 1, 4, 2, 3])
    assert (lo, hi) == (1, 5) and cov == pytest.approx(1 - 2 / 32)
    # n = 6: [x1, x6] covers 1 - 2/64 = 96.9%, the first n with a 95% interval.
    lo, hi, cov = bs.median_ci([6, 1, 5, 2, 4, 3])
    assert (lo, hi) == (1, 6) and cov == pytest.approx(1 - 2 / 64)
    # n = 20: the textbook 95% interval is [x6, x15] (coverage 95.86%).
    xs = list(range(1, 21))
    lo, hi, cov = bs.median_ci(xs)
    assert (lo, hi) == (6, 15)
    assert cov == pytest.approx(1 - 2 * sum(math.comb(20, i) for i in range(6)) / 2 ** 20)
    assert cov >= 0.95


def test_median_ci_contains_the_median():
    rng = random.Random(7)
    for n in range(1, 40):
        xs = [rng.lognormvariate(0, 1) for _ in range(n)]
        lo, hi, _ = bs.median_ci(xs)
        assert lo <= bs.median(xs) <= hi


def test_mann_whitney_exact_by_hand():
    # Complete separation of 5 and 5: U = 0, two-sided p = 2 / C(10, 5) = 2/252.
    r = bs.mann_whitney_u([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    assert r["method"] == "exact" and r["u"] == 0
    assert r["p"] == pytest.approx(2 / 252)
    # The mirror image gives U = 25 and the same p.
    r = bs.mann_whitney_u([6, 7, 8, 9, 10], [1, 2, 3, 4, 5])
    assert r["u"] == 25 and r["p"] == pytest.approx(2 / 252)
    # 3 against 3 completely separated: p = 2/20, never significant at 5%.
    assert bs.mann_whitney_u([1, 2, 3], [4, 5, 6])["p"] == pytest.approx(0.1)


def test_mann_whitney_identical_samples_are_not_different():
    r = bs.mann_whitney_u([1, 1, 1, 1, 1], [1, 1, 1, 1, 1])
    assert r["p"] == 1.0


def test_exact_distribution_sums_to_all_arrangements():
    for n1, n2 in [(1, 1), (3, 4), (5, 5), (6, 9)]:
        counts = bs._exact_u_counts(n1, n2)
        assert sum(counts) == math.comb(n1 + n2, n1)
        assert len(counts) == n1 * n2 + 1
        assert counts == counts[::-1]  # symmetric about n1 n2 / 2


CANNED = [
    ([2431, 1896, 3590, 2800, 2600], [17002, 14328, 26614, 16000, 18500]),
    ([5.6, 2.3, 434.1, 3.1, 7.7], [2.8, 1.2, 3.8, 2.5, 3.0]),
    ([10, 11, 12, 13, 14, 15], [12.5, 13.5, 14.5, 15.5, 16.5, 17.5]),
    ([1.0, 2.0, 2.0, 3.0, 4.0, 4.0], [2.0, 3.0, 3.0, 5.0, 6.0, 6.0]),  # ties: normal approximation
    ([0.5] * 3 + [0.7] * 4, [0.6] * 5 + [0.9] * 2),
]


@pytest.mark.parametrize("x,y", CANNED)
def test_mann_whitney_matches_scipy(x, y):
    stats = pytest.importorskip("scipy.stats")
    ours = bs.mann_whitney_u(x, y)
    method = "exact" if ours["method"] == "exact" else "asymptotic"
    ref = stats.mannwhitneyu(x, y, alternative="two-sided", method=method, use_continuity=True)
    assert ours["u"] == pytest.approx(ref.statistic)
    assert ours["p"] == pytest.approx(ref.pvalue, rel=1e-9)


def test_compare_verdicts():
    up = bs.compare([100, 101, 99, 102, 98], [150, 151, 149, 152, 148], higher_is_better=True)
    assert up["verdict"] == "improved" and up["significant"]
    assert up["change"] == pytest.approx(0.5)
    down = bs.compare([100, 101, 99, 102, 98], [150, 151, 149, 152, 148], higher_is_better=False)
    assert down["verdict"] == "regressed"
    noise = bs.compare([100, 120, 90, 110, 95], [105, 98, 115, 92, 101], higher_is_better=True)
    assert noise["verdict"] == "not significant" and not noise["significant"]
    assert bs.compare([None, None], [1, 2], True)["verdict"] == "no data"
    assert bs.compare([0, 0, 0, 0, 0], [1, 2, 3, 4, 5], True)["change"] is None


def step(rate, p99_us, errors=0):
    return {"rate": rate, "errors": errors, "latency": {"p99_us": p99_us}}


def test_saturation_rate():
    steps = [step(100, 900), step(200, 1200), step(300, 6000), step(400, 90000), step(100, 800)]
    assert bs.saturation_rate(steps, 5000) == 300
    assert bs.saturation_rate(steps, 100000) is None
    # Errors mark saturation even when latency stays low.
    assert bs.saturation_rate([step(100, 10), step(200, 10, errors=3)], 5000) == 200
    # The ramp down after the highest rate does not count.
    assert bs.saturation_rate([step(100, 10), step(400, 10), step(50, 99999)], 5000) is None
    assert bs.saturation_rate([], 5000) is None
