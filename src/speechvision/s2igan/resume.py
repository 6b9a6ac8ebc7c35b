"""What ``--resume`` may change in a run's config: the one policy of both trainings.

A resumed run keeps the config it was trained with (its checkpoint's), except for the keys of
:data:`MAY_CHANGE`: how long it trains, its learning rates and schedule, and how often it logs, snapshots,
checkpoints and evaluates. An override of any other key that differs from the run's value (the architecture,
the losses, the batch size, the data, the seeds, the preset) is refused in one line naming the key.
"""

from __future__ import annotations

from speechvision.s2igan.config import Config, ConfigError, apply_overrides, config_from_dict

MAY_CHANGE = (
    "gan.iterations", "sen.epochs",  # how long
    "gan.lr_g", "gan.lr_d", "gan.lr_rs", "sen.lr", "sen.lr_step_epochs", "sen.lr_gamma",  # learning rates
    "gan.log_every", "gan.snapshot_every", "gan.checkpoint_every", "sen.eval_every_epochs",  # how often
)


def may_change(key: str) -> bool:
    """Whether ``--resume`` may change the config key ``key`` (``section.key``; prefixes of :data:`MAY_CHANGE`)."""
    return any(key == p or key.startswith(p + ".") for p in MAY_CHANGE)


def flat(d: dict, prefix: str = "") -> dict:
    """A nested config dict as ``{"section.key": value}`` (tuples as lists)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = list(v) if isinstance(v, tuple) else v
    return out


def shown(value) -> str:
    """A config value as ``--set`` takes it (``true``, ``0.5,0.999``)."""
    if isinstance(value, bool):
        return str(value).lower()
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def resume_config(saved: dict, overrides: list[str] | tuple[str, ...], done: tuple[str, int]) -> tuple[Config, dict]:
    """The config a run resumes with: its checkpoint's (``saved``, the dict form) with ``overrides``
    (``section.key=value``) applied, and what they change (``{key: new value}``, only keys whose value differs).

    ``done``: the counting key and how far the run got (``("gan.iterations", step)``); it may not be set lower.

    Raises:
        ConfigError: an override of a key outside :data:`MAY_CHANGE` that differs from the run's value
            (``gan.generator.ngf: the run was trained with 32; start a new --out to change it``), a count below
            ``done``, or a bad override (as :func:`~speechvision.s2igan.config.apply_overrides`).
    """
    base = config_from_dict(saved)
    before = flat(base.to_dict())
    cfg = apply_overrides(config_from_dict(saved), list(overrides))
    changes = {k: v for k, v in flat(cfg.to_dict()).items() if v != before.get(k)}
    for key in changes:
        if not may_change(key):
            raise ConfigError(f"{key}: the run was trained with {shown(before.get(key))}; start a new --out to "
                              "change it")
    key, n = done
    if changes.get(key, n) < n:
        raise ConfigError(f"{key}={changes[key]}: the run has already done {n}; set it to {n} or more")
    return cfg, changes
