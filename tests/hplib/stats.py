"""The one set of statistics of the test suites and load tests: medians,
distribution-free confidence intervals of the median, the Mann-Whitney U test
on small samples, the before/after verdict of make bench and make lab, and
percentiles.

Why our own code and not scipy: the harness must run where only the Python
standard library is present (the CI image, a developer's machine without
python3-scipy), and the three functions below are short. tests/bench/
test_stats.py checks them against textbook values and, where Debian's
python3-scipy is installed, against scipy.stats.mannwhitneyu on canned data.

Conventions: samples are lists of floats (one value per run); nothing here
looks at time or the machine. Standard library only (the load tests import it).
"""

import math

ALPHA = 0.05


def median(xs):
    s = sorted(xs)
    n = len(s)
    if n == 0:
        raise ValueError("median of an empty sample")
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def median_present(xs):
    """The median of the values that are not None (a run that measured
    nothing records None), or None when no value is."""
    present = [x for x in xs if x is not None]
    return median(present) if present else None


def percentile(xs, p):
    """The nearest-rank p-th percentile (0..100) of xs, or None for an empty sample."""
    if not xs:
        return None
    s = sorted(xs)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * (len(s) - 1)))))
    return s[k]


def _binom_cdf_half(k, n):
    """P(X <= k) for X ~ Binomial(n, 1/2)."""
    return sum(math.comb(n, i) for i in range(0, k + 1)) / 2 ** n


def median_ci(xs, confidence=0.95):
    """A distribution-free confidence interval of the median from order statistics.

    The interval [x_(k), x_(n+1-k)] (1-based, sorted) covers the true median with
    probability 1 - 2 P(Binomial(n, 1/2) <= k - 1). The widest k whose coverage is
    still at least `confidence` is used; when even [min, max] falls short (n <= 5
    for 95%), [min, max] is returned with its real, lower coverage, which the
    report prints next to the interval.

    Returns (low, high, coverage)."""
    s = sorted(xs)
    n = len(s)
    if n == 0:
        raise ValueError("interval of an empty sample")
    best = (s[0], s[-1], 1 - 2 * _binom_cdf_half(0, n) if n > 0 else 0.0)
    for k in range(1, n // 2 + 1):
        coverage = 1 - 2 * _binom_cdf_half(k - 1, n)
        if coverage < confidence:
            break
        best = (s[k - 1], s[n - k], coverage)
    return best


def _ranks(values):
    """Midranks (1-based) of values, and the tie groups' sizes."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    ties = []
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        mid = (i + j) / 2 + 1
        for t in range(i, j + 1):
            ranks[order[t]] = mid
        if j > i:
            ties.append(j - i + 1)
        i = j + 1
    return ranks, ties


def _exact_u_counts(n1, n2):
    """counts[u] = number of arrangements of n1 + n2 distinct values whose U (of sample 1) is u."""
    # f[i][j] is the distribution of U for samples of sizes i and j, built by
    # whether the largest value belongs to sample 1 (adds j to U) or to sample 2.
    f = [[None] * (n2 + 1) for _ in range(n1 + 1)]
    for i in range(n1 + 1):
        for j in range(n2 + 1):
            if i == 0 or j == 0:
                f[i][j] = [1]
                continue
            a, b = f[i - 1][j], f[i][j - 1]
            out = [0] * (i * j + 1)
            for u, c in enumerate(a):
                out[u + j] += c
            for u, c in enumerate(b):
                out[u] += c
            f[i][j] = out
    return f[n1][n2]


def mann_whitney_u(x, y):
    """Two-sided Mann-Whitney U test of x against y.

    Returns {"u": U of x, "p": two-sided p-value, "method": "exact" | "normal"}.
    Exact (the permutation distribution) when both samples have at most 25
    values and there are no ties; otherwise the normal approximation with the
    tie correction and a continuity correction, as scipy's "asymptotic" method."""
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        raise ValueError("Mann-Whitney U needs two non-empty samples")
    ranks, ties = _ranks(list(x) + list(y))
    r1 = sum(ranks[:n1])
    u1 = r1 - n1 * (n1 + 1) / 2
    if not ties and n1 <= 25 and n2 <= 25:
        counts = _exact_u_counts(n1, n2)
        total = sum(counts)
        u = int(round(max(u1, n1 * n2 - u1)))
        tail = sum(counts[u:]) / total
        return {"u": u1, "p": min(1.0, 2 * tail), "method": "exact"}
    n = n1 + n2
    mu = n1 * n2 / 2
    tie_term = sum(t ** 3 - t for t in ties) / (n * (n - 1))
    var = n1 * n2 / 12 * ((n + 1) - tie_term)
    if var <= 0:  # every value equal: no evidence of a difference
        return {"u": u1, "p": 1.0, "method": "normal"}
    z = (abs(u1 - mu) - 0.5) / math.sqrt(var)
    p = math.erfc(max(z, 0) / math.sqrt(2))
    return {"u": u1, "p": min(1.0, p), "method": "normal"}


def compare(before, after, higher_is_better, alpha=ALPHA, confidence=0.95):
    """Compares two samples of one metric.

    Returns medians, intervals, the relative change of the medians (after /
    before - 1, None when the before median is 0), the test, and a verdict:
    "improved", "regressed" (significant at alpha, in the metric's good or bad
    direction), "not significant", or "no data"."""
    before = [v for v in before if v is not None]
    after = [v for v in after if v is not None]
    if not before or not after:
        return {"verdict": "no data", "n_before": len(before), "n_after": len(after)}
    mb, ma = median(before), median(after)
    lo_b, hi_b, cov_b = median_ci(before, confidence)
    lo_a, hi_a, cov_a = median_ci(after, confidence)
    test = mann_whitney_u(before, after)
    change = (ma / mb - 1) if mb != 0 else None
    significant = test["p"] < alpha
    if not significant or ma == mb:
        verdict = "not significant"
    else:
        better = (ma > mb) == bool(higher_is_better)
        verdict = "improved" if better else "regressed"
    return {
        "before_median": mb, "before_ci": [lo_b, hi_b], "before_ci_coverage": cov_b,
        "after_median": ma, "after_ci": [lo_a, hi_a], "after_ci_coverage": cov_a,
        "change": change, "p": test["p"], "u": test["u"], "test": test["method"],
        "significant": significant, "verdict": verdict,
        "n_before": len(before), "n_after": len(after),
    }


def saturation_rate(steps, threshold_us, key="p99_us"):
    """The first step rate at which the latency percentile `key` crosses
    threshold_us, or errors appear; None when no step does. Steps are dicts
    with "rate", "errors" and "latency" (openloop's per-step JSON), in the
    order they ran; only the rising part (up to the highest rate) counts, so
    the ramp-down of a peak-hour shape does not decide it."""
    if not steps:
        return None
    peak = max(range(len(steps)), key=lambda i: steps[i]["rate"])
    for s in steps[:peak + 1]:
        lat = s.get("latency") or {}
        if s.get("errors", 0) > 0 or lat.get(key, 0) > threshold_us:
            return s["rate"]
    return None
