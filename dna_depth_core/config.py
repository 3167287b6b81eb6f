"""Typed configuration: dataclasses with documented defaults, filled from YAML and overrides.

Every configurable part of the project is a dataclass whose field docstrings document the
defaults. :func:`load_config` builds one from a YAML file and ``key.sub=value`` overrides
with OmegaConf, which checks types and rejects unknown keys; its errors come back as one
:class:`~dna_depth_core.errors.UserError` naming the key.

Values are checked in one way everywhere: each config dataclass checks its own fields in
``__post_init__`` with :func:`require`, which raises :class:`ConfigError` naming the key
and what is allowed. So a config cannot be built with a value no run can use, whether it
comes from YAML, overrides or code; :func:`check_config` runs the checks again on a config
whose fields were changed after it was built. ``ConfigError`` is a ``UserError``: the
command-line tools print it as one line (exit code 2), the one conversion at the boundary.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import UserError

ConfigT = TypeVar("ConfigT")


class ConfigError(UserError, ValueError):
    """A configuration value no run can use; the message names the key and what is allowed.

    A :class:`UserError` for the tools, which print it as one line, and a ``ValueError``
    like any other bad argument for code that builds configs itself.
    """


def require(condition: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``condition`` holds (for ``__post_init__``)."""
    if not condition:
        raise ConfigError(message)


def check_config(config: Any) -> None:
    """Run the ``__post_init__`` checks of ``config`` and of every dataclass in its fields
    (nested, or in lists and tuples) again, innermost first, as building it did.

    Raises:
        ConfigError: a value changed after construction that no run can use.
    """
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        for element in value if isinstance(value, (list, tuple)) else (value,):
            if dataclasses.is_dataclass(element) and not isinstance(element, type):
                check_config(element)
    post_init = getattr(config, "__post_init__", None)
    if post_init is not None:
        post_init()


def load_config(
    cls: type[ConfigT],
    source: str | Path | dict[str, Any] | None = None,
    overrides: list[str] | None = None,
) -> ConfigT:
    """Build a ``cls`` dataclass from defaults, a YAML file or dict, then dotted overrides.

    Args:
        cls: the dataclass type (nested dataclasses allowed).
        source: path of a YAML file, an already parsed mapping, or ``None`` for defaults.
        overrides: ``["optim.lr=2e-4", "data.batch_size=8"]``; applied last.

    Raises:
        UserError: unreadable or malformed YAML, unknown keys, values of the wrong type.
    """
    where = "defaults"
    layers = [OmegaConf.structured(cls)]
    try:
        if isinstance(source, (str, Path)):
            where = str(source)
            try:
                data = yaml.safe_load(Path(source).read_text())
            except OSError as error:
                raise UserError(f"cannot read config file {where}: {error.strerror}") from None
            except yaml.YAMLError as error:
                raise UserError(f"config file {where} is not valid YAML: {error}") from None
            if data is not None and not isinstance(data, dict):
                raise UserError(f"config file {where} must hold a mapping of keys to values, got {type(data).__name__}")
            layers.append(OmegaConf.create(data or {}))
        elif source is not None:
            where = "the given mapping"
            layers.append(OmegaConf.create(source))
        if overrides:
            bad = [item for item in overrides if "=" not in item]
            if bad:
                raise UserError(f"overrides must look like key.sub=value, got {bad}")
            where = f"{where} with overrides {overrides}"
            layers.append(OmegaConf.from_dotlist(overrides))
        merged = OmegaConf.merge(*layers)
    except OmegaConfBaseException as error:
        raise _config_error(where, error) from None
    try:
        return OmegaConf.to_object(merged)
    except ConfigError:
        raise  # names its key already
    except (ValueError, OmegaConfBaseException) as error:
        # Dataclasses that check their values with a plain ValueError (outside this convention).
        raise _config_error(where, error) from None


def _config_error(where: str, error: Exception) -> UserError:
    message = str(error).splitlines()[0]
    key = getattr(error, "full_key", None)
    return UserError(f"invalid configuration in {where}: {message}" + (f" (key '{key}')" if key else ""))


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as plain nested dicts/lists (for YAML, JSON and logs)."""
    return dataclasses.asdict(config)


def save_config(config: Any, path: str | Path) -> None:
    """Write a dataclass config as YAML that :func:`load_config` reads back."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
