"""The metric registry: one callable per metric name, over one evaluation context.

A metric is ``fn(ctx) -> {report key: entry}``: it reads what it needs from ``ctx`` (the input
contract of :mod:`speechvision.metrics.suite`) and returns the entries it adds to a report's
``metrics`` (``fid`` returns ``fid`` and ``fid_real_train_baseline``). Register one with::

    @register_metric("fid", needs=("inception",), protocol="FID between ...")
    def fid(ctx) -> dict: ...

and run requested names with :func:`compute_metrics`. ``needs`` names the models a metric reads
(``inception``, ``classifier``, ``sen``) so a context can refuse a request before any work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

GENERATOR_METRICS = ("fid", "is", "map", "semantic")


@dataclass(frozen=True)
class Metric:
    """A registered metric: name, the callable ``fn(ctx) -> dict``, the models it reads, one line on the protocol."""

    name: str
    fn: Callable[[Any], dict]
    needs: tuple[str, ...]
    protocol: str

    def __call__(self, ctx) -> dict:
        return self.fn(ctx)


REGISTRY: dict[str, Metric] = {}


def register_metric(name: str, *, needs: Iterable[str] = (), protocol: str = ""):
    """Decorator: register ``fn(ctx) -> dict`` as metric ``name`` in :data:`REGISTRY`; returns ``fn`` unchanged.

    Raises:
        ValueError: ``name`` is registered already.
    """
    def decorate(fn: Callable[[Any], dict]) -> Callable[[Any], dict]:
        if name in REGISTRY:
            raise ValueError(f"metric {name!r} is registered twice")
        REGISTRY[name] = Metric(name, fn, tuple(needs), protocol)
        return fn

    return decorate


def check_metric_names(names: Iterable[str], allowed: Iterable[str] = GENERATOR_METRICS) -> list[str]:
    """The requested names, in order and without repeats.

    Raises:
        ValueError: (one line) an unknown or unregistered name, or none given; the message lists the choices.
    """
    allowed = [a for a in allowed if a in REGISTRY]
    names = list(dict.fromkeys(names))
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise ValueError(f"unknown metric {', '.join(unknown) or '(none given)'}; choose from {', '.join(allowed)}")
    return names


def parse_metrics(text: str, allowed: Iterable[str] = GENERATOR_METRICS) -> list[str]:
    """``"fid,is"`` -> ``["fid", "is"]``. Raises ValueError (one line) naming an unknown metric."""
    return check_metric_names([t.strip() for t in text.split(",") if t.strip()], allowed)


def get_metric(name: str) -> Metric:
    """The registered :class:`Metric` called ``name``. Raises ValueError (one line) for an unknown name."""
    if name not in REGISTRY:
        raise ValueError(f"unknown metric {name}; choose from {', '.join(REGISTRY)}")
    return REGISTRY[name]


def compute_metrics(names: Iterable[str], ctx) -> dict:
    """Run the metrics ``names`` in order over ``ctx``; their entries merged into one dict.

    Raises:
        ValueError: an unknown name (before any metric runs); whatever a metric or the context raises.
    """
    metrics = [get_metric(n) for n in dict.fromkeys(names)]
    out: dict = {}
    for metric in metrics:
        out.update(metric(ctx))
    return out
