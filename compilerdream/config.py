"""Config system of REFERENCE.md §1.1: flat dotted keys, named YAML blocks, regex keys, typed CLI flags."""

from __future__ import annotations

import difflib
import io
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from compilerdream.compiler.fileio import atomic_write

__all__ = [
    "Config",
    "ConfigError",
    "atomic_write_text",
    "default_config_paths",
    "find_config_file",
    "help_text",
    "is_pattern",
    "load_blocks",
    "load_configs",
    "main_parse",
    "parse_flags",
    "split_configs",
]

SCALAR_TYPES = (bool, int, float, str)
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.\-]*")


class ConfigError(ValueError):
    """A config file, preset, key or value that cannot be used; the message names the input."""


# ----------------------------------------------------------------------------------------------
# YAML: accept `1e-4` as a float (PyYAML's YAML 1.1 resolver reads it as a string).


class _Loader(yaml.SafeLoader):
    """SafeLoader that also resolves exponent floats without a dot (`1e-4`, `2e6`)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _read_yaml(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.load(f, Loader=_Loader)  # _Loader is a SafeLoader
    except OSError as e:
        raise ConfigError(f"Cannot read config file {path}: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"Invalid YAML in {path}: {' '.join(str(e).split())}") from e


# ----------------------------------------------------------------------------------------------
# Keys and types


def is_pattern(key: str) -> bool:
    """A key is a regular expression when it has a character outside `[A-Za-z0-9_.-]`."""
    return _PLAIN_KEY.fullmatch(key) is None


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested mapping -> ordered (dotted key, value) pairs."""
    items: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        if not isinstance(key, str):
            raise ConfigError(f"Config keys must be strings, got {key!r}")
        full = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping):
            if not value:
                raise ConfigError(f"Config key '{full}' holds an empty mapping")
            items.extend(_flatten(value, full))
        else:
            items.append((full, value))
    return items


def _type_name(value: Any) -> str:
    if isinstance(value, list):
        return f"list[{type(value[0]).__name__}]"
    return type(value).__name__


def _check_default(key: str, value: Any) -> Any:
    """Validate a default value: scalars of bool/int/float/str or non-empty homogeneous lists."""
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, list):
        if not value:
            raise ConfigError(f"Config key '{key}' has an empty list; lists need at least one element")
        kinds = {type(v) for v in value}
        if len(kinds) != 1 or not isinstance(value[0], SCALAR_TYPES):
            raise ConfigError(f"Config key '{key}' mixes element types or holds non-scalars: {value!r}")
        return list(value)
    if value is None or not isinstance(value, SCALAR_TYPES):
        raise ConfigError(f"Config key '{key}' must be a bool, int, float, str or list, got {value!r}")
    return value


def _coerce_scalar(value: Any, default: Any, label: str) -> Any:
    """Convert `value` (a string from the CLI or a YAML scalar) to the type of `default`."""
    target = type(default)
    bad = ConfigError(f"{label} expects {target.__name__}, got {value!r}")
    if target is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise bad
    if isinstance(value, bool):  # bool is an int subclass; never accept it for numbers or strings
        raise bad
    if target is int:
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
            try:
                value = float(value)
            except ValueError:
                raise bad from None
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad
    if target is float:
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise bad from None
        raise bad
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):  # e.g. `test_dataset: 123` in a YAML block
        return str(value)
    raise bad


def _coerce(value: Any, default: Any, label: str) -> Any:
    """Convert a YAML/CLI value to the type of `default`; lists accept a list or 'a,b,c'."""
    if not isinstance(default, list):
        if isinstance(value, (list, tuple, Mapping)):
            raise ConfigError(f"{label} expects {_type_name(default)}, got {value!r}")
        return _coerce_scalar(value, default, label)
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")] if value.strip() else []
    elif not isinstance(value, (list, tuple)):
        value = [value]
    if not value or any(isinstance(v, str) and not v for v in value):
        raise ConfigError(f"{label} expects a non-empty {_type_name(default)}, got {value!r}")
    element_label = f"{label} (list element)"
    return [_coerce_scalar(v, default[0], element_label) for v in value]


def _matching_keys(values: Mapping[str, Any], key: str) -> list[str]:
    if not is_pattern(key):
        return [key] if key in values else []
    try:
        regex = re.compile(key)
    except re.error as e:
        raise ConfigError(f"Invalid pattern '{key}': {e}") from e
    return [k for k in values if regex.match(k)]


def _suggest(values: Mapping[str, Any], key: str) -> str:
    close = difflib.get_close_matches(key, list(values), n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


# ----------------------------------------------------------------------------------------------
# Config


class Config(Mapping[str, Any]):
    """Immutable flat mapping with dotted keys (`model_opt.lr`).

    Build it from a (possibly nested) mapping; nested dicts are flattened. `update()` returns a new
    Config whose keys must already exist (plain or regex keys) and whose values are converted to the
    types of the existing ones. `config.model_opt` gives the group as a Config ({'lr': ..., ...}),
    `config.seed` a value.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        flat: dict[str, Any] = {}
        for key, value in _flatten({**(values or {}), **kwargs}):
            if is_pattern(key):
                raise ConfigError(f"Pattern key '{key}' can only update existing keys, not define one")
            flat[key] = _check_default(key, value)
        object.__setattr__(self, "_values", flat)

    # Mapping protocol
    def __getitem__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise KeyError(f"Unknown config key '{key}'{_suggest(self._values, key)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._values:
            return self._values[name]
        group = self.group(name)
        if not group:
            raise AttributeError(f"Config has no key or group '{name}'{_suggest(self._values, name)}")
        return group

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Config is immutable; use config.update({...}) to get a new one")

    def __reduce__(self) -> tuple[Any, ...]:
        return (Config, (dict(self._values),))

    def __repr__(self) -> str:
        return f"Config({self._values!r})"

    def __str__(self) -> str:
        return "\n".join(f"{key}: {_format_value(value)}" for key, value in self._values.items())

    # Derived configs
    def group(self, prefix: str) -> Config:
        """Keys under `prefix.` with the prefix removed (empty Config if none)."""
        start = prefix.rstrip(".") + "."
        return Config({k[len(start) :]: v for k, v in self._values.items() if k.startswith(start)})

    def update(self, updates: Mapping[str, Any] | None = None, /, *, source: str = "", **kwargs: Any) -> Config:
        """New Config with `updates` applied in order (nested dicts flattened, regex keys expanded).

        Raises ConfigError for keys or patterns that match nothing and for values of the wrong type.
        `source` names where the updates come from (e.g. "block 'compilergym'") in error messages.
        """
        where = f" in {source}" if source else ""
        values = dict(self._values)
        for key, value in _flatten({**(updates or {}), **kwargs}):
            matches = _matching_keys(values, key)
            if not matches:
                raise ConfigError(f"Unknown key or pattern '{key}'{where}{_suggest(values, key)}")
            for match in matches:
                values[match] = _coerce(value, values[match], f"'{match}'{where}")
        return _from_flat(values)

    # Conversion and files
    def to_dict(self, nested: bool = False) -> dict[str, Any]:
        """Plain dict copy: flat dotted keys, or nested by dots."""
        if not nested:
            return {k: list(v) if isinstance(v, list) else v for k, v in self._values.items()}
        tree: dict[str, Any] = {}
        for key, value in self._values.items():
            *parents, leaf = key.split(".")
            node = tree
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = list(value) if isinstance(value, list) else value
        return tree

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(nested=True), sort_keys=False, default_flow_style=False)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the config as nested YAML, atomically (temp file in the same folder + os.replace)."""
        atomic_write_text(Path(path), self.to_yaml())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Config:
        """Read a YAML file written by `save` (a nested or flat mapping of keys to values)."""
        data = _read_yaml(Path(path))
        if not isinstance(data, Mapping):
            raise ConfigError(f"Config file {path} must hold a mapping, got {type(data).__name__}")
        return cls(data)


def _from_flat(values: dict[str, Any]) -> Config:
    config = object.__new__(Config)
    object.__setattr__(config, "_values", values)
    return config


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder and os.replace."""
    atomic_write(path, text)


# ----------------------------------------------------------------------------------------------
# Config file and presets


def default_config_paths() -> list[Path]:
    """Where configs.yaml is looked for: the repository root first, then inside the package."""
    package = Path(__file__).resolve().parent
    return [package.parent / "configs.yaml", package / "configs.yaml"]


def find_config_file(path: str | os.PathLike[str] | None = None, search: Sequence[Path] | None = None) -> Path:
    """The config file to use: `path` if given, else the first existing file of `search`."""
    if path is not None:
        if not Path(path).is_file():
            raise ConfigError(f"Config file {path} does not exist")
        return Path(path)
    candidates = list(search) if search is not None else default_config_paths()
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(f"No configs.yaml found (looked in {', '.join(str(c) for c in candidates)})")


def load_blocks(path: str | os.PathLike[str] | None = None) -> dict[str, dict[str, Any]]:
    """Named blocks of the config file (block name -> nested mapping); must contain `defaults`."""
    file = find_config_file(path)
    data = _read_yaml(file)
    if not isinstance(data, Mapping) or "defaults" not in data:
        raise ConfigError(f"{file} must be a mapping of named blocks including 'defaults'")
    blocks: dict[str, dict[str, Any]] = {}
    for name, block in data.items():
        if block is None:
            block = {}
        if not isinstance(block, Mapping):
            raise ConfigError(f"Block '{name}' in {file} must be a mapping, got {type(block).__name__}")
        blocks[str(name)] = dict(block)
    return blocks


def load_configs(names: Sequence[str] = (), path: str | os.PathLike[str] | None = None) -> Config:
    """`defaults` updated by each named block, left to right (later blocks win)."""
    blocks = load_blocks(path)
    unknown = [name for name in names if name not in blocks]
    if unknown:
        raise ConfigError(f"Unknown config preset '{unknown[0]}'; available: {', '.join(blocks)}")
    config = Config(blocks["defaults"])
    for name in names:
        config = config.update(blocks[name], source=f"block '{name}'")
    return config


# ----------------------------------------------------------------------------------------------
# Command line


def split_configs(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Pre-parse `--configs a b` / `--configs=a,b`; returns (preset names, remaining arguments).

    Without `--configs` the names are ["defaults"] (applying `defaults` over itself is a no-op).
    """
    names: list[str] = []
    rest: list[str] = []
    seen = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--configs" or arg.startswith("--configs="):
            seen = True
            values = [arg.split("=", 1)[1]] if "=" in arg else []
            i += 1
            while "=" not in arg and i < len(argv) and not argv[i].startswith("--"):
                values.append(argv[i])
                i += 1
            parts = [p for v in values for p in v.split(",") if p]
            if not parts:
                raise ConfigError("Flag --configs expects at least one preset name")
            names.extend(parts)
            continue
        rest.append(arg)
        i += 1
    return (names if seen else ["defaults"]), rest


def _group_flags(argv: Sequence[str]) -> list[tuple[str, list[str]]]:
    """['--a', '1', '--b=2', '--c', 'x', 'y'] -> [('a', ['1']), ('b', ['2']), ('c', ['x', 'y'])]."""
    flags: list[tuple[str, list[str]]] = []
    takes_more = False  # `--key=value` closes the flag; `--key` collects the following words
    for arg in argv:
        if arg.startswith("--") and len(arg) > 2:
            key, eq, value = arg[2:].partition("=")
            flags.append((key, [value] if eq else []))
            takes_more = not eq
        elif takes_more:
            flags[-1][1].append(arg)
        else:
            raise ConfigError(f"Unexpected argument '{arg}': flags look like --key value")
    return flags


def _coerce_cli(values: list[str], default: Any, flag: str) -> Any:
    if isinstance(default, list):
        if len(values) == 1:
            return _coerce(values[0], default, flag)
        return _coerce(values, default, flag)
    if len(values) != 1:
        raise ConfigError(f"{flag} expects one {_type_name(default)} value, got {len(values)}: {values!r}")
    return _coerce_scalar(values[0], default, flag)


def parse_flags(config: Config, argv: Sequence[str]) -> Config:
    """Apply `--key value`, `--key=value` and `--key v1 v2` flags (plain or regex keys) in order."""
    values = config.to_dict()
    for key, args in _group_flags(argv):
        flag = f"--{key}"
        if not args:
            raise ConfigError(f"Flag {flag} expects a value")
        matches = _matching_keys(values, key)
        if not matches:
            raise ConfigError(f"Flag {flag} did not match any config keys{_suggest(values, key)}")
        for match in matches:
            label = flag if match == key else f"{flag} (key {match})"
            values[match] = _coerce_cli(args, values[match], label)
    return _from_flat(values)


def _format_value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    if isinstance(value, str):
        return repr(value) if value == "" or value.strip() != value else value
    return str(value)


def help_text(config: Config) -> str:
    """One line per key: `--key  value  (type)`."""
    width = max((len(k) for k in config), default=0) + 2
    rows = [f"  --{key:<{width}} {_format_value(value)}  ({_type_name(value)})" for key, value in config.items()]
    return "\n".join(rows)


def main_parse(
    argv: Sequence[str] | None = None,
    description: str = "",
    path: str | os.PathLike[str] | None = None,
    stdout: io.TextIOBase | None = None,
) -> Config:
    """Compose the config from the command line; prints help (exit 0) or a one-line error (exit 2)."""
    args = list(sys.argv[1:] if argv is None else argv)
    prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "compilerdream"
    out = stdout or sys.stdout
    try:
        names, rest = split_configs(args)
        config = load_configs(names, path)
        if "--help" in rest or "-h" in rest:
            if description:
                print(description, file=out)
            print(f"usage: {prog} [--configs NAME ...] [--key VALUE ...]", file=out)
            print(f"presets: {', '.join(load_blocks(path))}", file=out)
            print(f"keys (after --configs {' '.join(names)}):", file=out)
            print(help_text(config), file=out)
            raise SystemExit(0)
        return parse_flags(config, rest)
    except ConfigError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
