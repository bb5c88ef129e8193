"""Scraping a process's /metrics over HTTP, as Prometheus does, and reading
the samples back with prometheus_client's own parser."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int, host: str = "127.0.0.1", path: str = "/metrics") -> tuple[str, Samples]:
    """The exposition text and its samples by (sample name, labels)."""
    with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=30) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return text, samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples named `name` whose labels include `labels`
    (0 when there is none: a counter's series appears at its first increment)."""
    wanted = set(labels.items())
    return sum(value for (sample, have), value in samples.items()
               if sample == name and wanted <= have)


def label_values(samples: Samples, prefix: str) -> set[str]:
    """Every label value of the series whose names start with `prefix`."""
    return {value for (name, labels) in samples if name.startswith(prefix)
            for _, value in labels}


def defined_names() -> set[str]:
    """Every sample name the three kinds of process can expose (a counter's
    `_total`, a histogram's `_bucket`, `_sum` and `_count`), from their
    definitions: what a dashboard or an alert may query."""
    from prometheus_client.metrics import MetricWrapperBase

    from connectors.metrics import listener, operator, processor

    families = [family for module in (listener, operator, processor)
                for value in vars(module).values() if isinstance(value, MetricWrapperBase)
                for family in value.describe()]
    families += list(operator.ConnectionsCollector(list).describe())
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
                "gauge": ("",)}
    return {family.name + suffix for family in families for suffix in suffixes[family.type]}
