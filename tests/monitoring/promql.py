"""Metric names referenced by PromQL expressions, and those /metrics exposes."""

import re

# Names that Prometheus itself produces rather than a target.
BUILTIN = {"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds", "scrape_samples_scraped"}

_FUNCS_AND_WORDS = {
    "sum", "avg", "max", "min", "count", "rate", "irate", "increase", "deriv", "histogram_quantile", "avg_over_time",
    "max_over_time", "min_over_time", "label_replace", "by", "without", "on", "ignoring", "and", "or", "unless", "offset",
    "topk", "bottomk", "time", "vector", "scalar", "abs", "clamp_min", "clamp_max", "predict_linear", "group_left",
    "group_right", "bool", "delta", "idelta", "sort", "sort_desc", "quantile_over_time", "sum_over_time", "count_over_time",
    "le", "instance", "job", "route", "method", "code", "stage", "statement", "result", "datname", "alertstate", "severity",
    "alertname", "inf", "nan", "Inf", "NaN", "queryid", "query", "db", "cmd", "escalated_alert", "interval", "rate_interval",
}


def metric_names(expr):
    """The metric names an expression selects (label names and values, functions and keywords removed)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals: label values, regexes
    e = re.sub(r"\{[^}]*\}", "{}", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "[]", e)  # ranges
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)  # grouping label lists
    e = re.sub(r"\$\{?\w+\}?", " ", e)  # Grafana variables
    e = re.sub(r"\b\d+(?:\.\d+)?(?:ms|[smhdwy])?\b", " ", e)  # numbers and durations (offset 1m)
    names = set()
    for tok in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        if tok in _FUNCS_AND_WORDS or re.fullmatch(r"\d+[smhdwy]", tok) or tok.startswith("__"):
            continue
        names.add(tok)
    return names


def exposed_names(metrics_text):
    """Every series name in a Prometheus text exposition, plus each histogram's base name."""
    names = set()
    for line in metrics_text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0)
        names.add(name)
    return names
