"""The scoring service's metrics: counters and histograms rendered as Prometheus text for `GET /metrics`.

    metrics = Metrics()
    metrics.inc("rewardkit_requests_total", route="/v1/score", status="200")
    metrics.observe("rewardkit_request_seconds", 0.012, SECONDS_BUCKETS, route="/v1/score")
    metrics.render({"rewardkit_ready": 1.0})   # -> "# TYPE rewardkit_ready gauge
rewardkit_ready 1.0
# HELP ..."

Every name is declared in METRICS_HELP; the app owns its Metrics object (never a global).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

METRICS_HELP = {
    "rewardkit_requests_total": ("counter", "HTTP requests by route and status."),
    "rewardkit_request_errors_total": ("counter", "HTTP requests answered with status >= 400."),
    "rewardkit_request_seconds": ("histogram", "Request latency."),
    "rewardkit_batch_size": ("histogram", "Pairs per forward pass (its _count is the number of forwards)."),
    "rewardkit_queue_seconds": ("histogram", "Time a pair waited in the queue before its forward pass."),
    "rewardkit_tokens_total": ("counter", "Tokens run through the model."),
    "rewardkit_forward_seconds_total": ("counter", "Time spent in forward passes."),
    "rewardkit_templated_items_total": ("counter", "Items whose text already looked templated."),
}


SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    """Counters and histograms rendered as Prometheus text; owned by the app, never global."""

    def __init__(self) -> None:
        self.counters: dict[tuple[str, tuple], float] = defaultdict(float)
        self.histograms: dict[tuple[str, tuple], tuple[Sequence[float], list[float]]] = {}

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        self.counters[name, tuple(sorted(labels.items()))] += value

    def observe(self, name: str, value: float, buckets: Sequence[float], **labels: str) -> None:
        """Record one observation; the state is per-bucket counts followed by [sum, count]."""
        key = (name, tuple(sorted(labels.items())))
        _, counts = self.histograms.setdefault(key, (buckets, [0.0] * (len(buckets) + 2)))
        for i, bound in enumerate(buckets):
            counts[i] += value <= bound
        counts[-2] += value
        counts[-1] += 1

    def render(self, gauges: Mapping[str, float]) -> str:
        lines = [f"# TYPE {name} gauge\n{name} {value}" for name, value in gauges.items()]
        for name, (kind, text) in METRICS_HELP.items():
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            lines += [f"{name}{labelled(labels)} {v}" for (n, labels), v in self.counters.items() if n == name]
            for (n, labels), (buckets, counts) in self.histograms.items():
                if n == name:
                    bounds = [str(b) for b in buckets] + ["+Inf"]
                    lines += [f"{name}_bucket{labelled(labels + (('le', le),))} {c}"
                              for le, c in zip(bounds, counts[:-2] + [counts[-1]], strict=True)]
                    lines += [f"{name}_sum{labelled(labels)} {counts[-2]}",
                              f"{name}_count{labelled(labels)} {counts[-1]}"]
        return "\n".join(lines) + "\n"


def labelled(labels: tuple) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}" if labels else ""
