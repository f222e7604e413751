"""Configuration: built-in defaults < ``--config FILE`` (TOML) < command-line options.

The defaults come from the code itself (the audit options below and every detector's
keyword defaults), so they cannot drift from what runs; ``configs/default.toml`` is
:func:`render_toml` of them, and a test keeps the file current. Two configs ship inside the
package (:data:`PRESETS`), so ``--config quick`` works wherever datacheck is installed.
"""

from __future__ import annotations

import copy
import math
import numbers
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

from .engine.train_config import TrainConfig
from .errors import UsageError
from .validation import SEED_MAX, check_int_range, validate_params

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

AUDIT_OPTIONS = {
    # name: (default, help)
    "checks": (None, "detectors to run (names or fnmatch patterns); default: every default detector"),
    "seed": (0, "seed for every random choice; same data + seed gives identical findings"),
    "fail_on": ("", 'gates such as "near_duplicates>0,split_leakage>0,dark>5%"; exceeded => exit 1'),
    "max_missing": (0, "listed files that may be missing before the run fails with exit 3"),
    "workers": (-1, "decoding worker processes; -1 = one per CPU (at most 8), 0 = in-process"),
    "batch_size": (32, "images per decoding batch"),
    "device": ("auto", "auto, cpu, cuda, cuda:N or mps"),
    "model": ("convnet-small", "model for cross-validated training: convnet-small (trained from scratch), efficientnet-lite0 (ImageNet weights, installed), resnet18, resnet34, resnet50 (frozen backbones: a head is trained)"),
    "weights": ("", "weights file for the model (pretrained backbones); 'random' for untrained"),
    "cache_dir": ("", "cache of decoded images and model outputs; '' = the user cache dir, 'off' = none"),
}


ENGINE_OPTIONS = {
    # name: (default, help); on the command line --engine and --ray-address
    "name": ("local", "where per-sample work (decoding, statistics, pixels) runs: local worker processes, "
                      "or ray (Ray Data; pip install 'datacheck[ray]')"),
    "ray_address": ("", "Ray cluster to join with name = \"ray\"; '' = $RAY_ADDRESS, else a local Ray runtime"),
}
#: Command-line options that set [engine] keys.
ENGINE_FLAGS = {"engine": "name", "ray_address": "ray_address"}
ENGINES = ("local", "ray")


#: (least, most) of each integer [audit] option, None = unbounded. workers: -1 is the
#: documented "one per CPU"; nothing lies below it.
AUDIT_RANGES = {"seed": (0, SEED_MAX), "max_missing": (0, None), "workers": (-1, None), "batch_size": (1, None)}


def default_config() -> dict:
    """The complete default configuration: ``{"audit": {...}, "engine": {...}, "train": {...},
    "detectors": {name: {...}}}``."""
    from .detectors.registry import get_detector_class, list_detectors

    audit = {k: v for k, (v, _) in AUDIT_OPTIONS.items()}
    audit["checks"] = list_detectors(default_only=True)
    train = {k: v for k, v in asdict(TrainConfig()).items() if k != "model"}
    detectors = {name: get_detector_class(name)().get_params() for name in list_detectors()}
    engine = {k: v for k, (v, _) in ENGINE_OPTIONS.items()}
    return {"audit": audit, "engine": engine, "train": train, "detectors": detectors}


#: Configs shipped in the package (``datacheck/presets/<name>.toml``), given by name as
#: ``--config quick``: a team that installs datacheck from an index has no copy of this
#: repository's files, and its CI should not have to vendor them (as ruff's and eslint's
#: shared configs are named, not copied).
PRESETS = ("quick", "strict-ci")


def config_file(path: str | os.PathLike) -> Path:
    """The TOML file that ``--config path`` means: ``path`` itself, or the preset it names
    (:data:`PRESETS`) where no file or folder of that name exists (a file the user made wins)."""
    if isinstance(path, str | Path) and str(path) in PRESETS and not os.path.lexists(path):
        return Path(__file__).resolve().parent / "presets" / f"{path}.toml"
    return Path(path)


#: A config file larger than this is refused unread: every setting fits in a few KB, and a
#: file of gigabytes (a wrong path) would otherwise be read whole into memory.
MAX_CONFIG_BYTES = 16 * 2**20


def read_toml(path) -> dict:
    """The TOML file at ``path`` (or the preset it names, :func:`config_file`) as a dict; an
    unreadable or invalid file is a UsageError.

    Only a regular file is opened (symlinks followed): reading a named pipe without a writer
    blocks forever, and ``/dev/zero`` never ends. A UTF-8 byte order mark, which Windows
    editors write, is skipped.
    """
    from .engine.image_stats import require_regular_file

    file = config_file(path)
    # A preset's name that is also a path here (a folder "quick", a dangling link) reads that
    # path: its error says so, or "No such file" would be followed by "use --config quick",
    # the very option given.
    shadowed = isinstance(path, str | Path) and str(path) in PRESETS and file == Path(path)
    try:
        require_regular_file(file)
        with open(file, "rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise UsageError(f"config {path} is over {MAX_CONFIG_BYTES // 2**20} MiB: not a datacheck config")
        return tomllib.loads(data.decode("utf-8-sig"))
    except OSError as exc:
        if shadowed:
            raise UsageError(f"cannot read config {path}: {exc.strerror or exc} ({os.path.abspath(path)} is read "
                             f"instead of the config {path} that comes with datacheck: rename it, or run from "
                             "another folder)") from exc
        if isinstance(exc, FileNotFoundError):
            # README's examples name the presets as this repository's files (configs/quick.toml
            # before they moved into the package): say what works after an install.
            raise UsageError(f"cannot read config {path}: {exc.strerror or exc} (configs that come with datacheck: "
                             f"{', '.join(PRESETS)}, as --config {PRESETS[0]})") from exc
        raise UsageError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:  # TOML is UTF-8 by definition
        raise UsageError(f"cannot read config {path}: not UTF-8 text") from None
    except (tomllib.TOMLDecodeError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise UsageError(f"config {path} is not valid TOML: {str(exc)[:200]}") from exc


def load_config(path: str | Path | Mapping | None = None, overrides: dict | None = None) -> dict:
    """Defaults, updated by the TOML file at ``path`` (or a dict of its tables) and then by
    ``overrides`` (``None`` ignored).

    Raises
    ------
    UsageError
        Unreadable TOML, unknown sections or keys, or values of the wrong type.
    """
    config = default_config()
    if isinstance(path, Mapping):  # the Python API: the TOML file's tables as a dict
        _merge(config, dict(path), "the config dict")
    elif path is not None:
        user = read_toml(path)
        _merge(config, user, str(path))
    for key, value in (overrides or {}).items():
        if value is not None:
            section, key = ("engine", ENGINE_FLAGS[key]) if key in ENGINE_FLAGS else ("audit", key)
            _merge(config, {section: {key: value}}, "command line")
    return config


def _merge(config: dict, user: dict, origin: str) -> None:
    unknown = set(user) - {"audit", "engine", "train", "detectors"}
    if unknown:
        raise UsageError(f"unknown section [{sorted(unknown)[0]}] in {origin}; "
                         "expected [audit], [engine], [train] or [detectors.<name>]")
    for section in ("audit", "engine", "train", "detectors"):
        if not isinstance(user.get(section, {}), dict):
            raise UsageError(f"{section} in {origin} must be a table ([{section}]), got {user[section]!r:.40}")
    for section in ("audit", "engine", "train"):
        for key, value in user.get(section, {}).items():
            if key not in config[section]:
                raise UsageError(f"unknown option {section}.{key} in {origin}; known: {', '.join(config[section])}")
            config[section][key] = value = _typed(f"{section}.{key}", value, config[section][key], origin)
            if section == "audit":
                _check_audit_value(key, value, origin, list(config["detectors"]))
            if section == "engine" and key == "name" and value not in ENGINES:
                option = "--engine" if origin == "command line" else f"engine.name in {origin}"
                raise UsageError(f"{option} must be one of {', '.join(ENGINES)}, got {value!r}")
    for name, params in user.get("detectors", {}).items():
        if name not in config["detectors"]:
            from .detectors.registry import check_owner

            # [detectors.dark]: a check's parameters are its detector's (z_threshold of image_properties)
            owner = check_owner(name) if isinstance(name, str) else None
            hint = f" ({name!r} is a check of {owner!r}: its parameters go in [detectors.{owner}])" if owner else ""
            raise UsageError(f"unknown detector [detectors.{name}] in {origin}{hint}; "
                             f"known: {', '.join(config['detectors'])}")
        if not isinstance(params, dict):
            raise UsageError(f"detectors.{name} in {origin} must be a table")
        for key, value in params.items():
            if key not in config["detectors"][name]:
                known = ", ".join(config["detectors"][name]) or "none"
                raise UsageError(f"unknown parameter detectors.{name}.{key} in {origin}; known: {known}")
            config["detectors"][name][key] = _typed(f"detectors.{name}.{key}", value, config["detectors"][name][key], origin)
        # Each given value's own bounds too, whichever detectors this audit selects: an
        # out-of-range [detectors.non_iid] n_permutations passed while non_iid was not selected
        # (its type was checked, its range not), and the same file failed only in the run that
        # selected it. Rules across parameters and files a value names (cuts_from) are left to
        # create_detector, for the detectors that run.
        from .detectors.registry import get_detector_class

        validate_params(get_detector_class(name)._parameter_constraints,
                        {key: config["detectors"][name][key] for key in params}, name)


def _typed(name: str, value, default, origin: str):
    """``value`` if it has the default's type (an int is accepted for a float)."""
    numpy = sys.modules.get("numpy")  # a numpy bool exists only where numpy is imported (not by the CLI)
    if numpy is not None and isinstance(value, numpy.bool_):
        value = bool(value)  # a flag computed from an array, as numpy numbers are taken below
    if isinstance(default, bool) or isinstance(value, bool):
        ok = isinstance(value, bool) and isinstance(default, bool)
    elif isinstance(default, float):
        ok = isinstance(value, numbers.Real)  # numpy scalars too (a value taken from an array)
        value = float(value) if ok else value
    elif isinstance(default, int) and isinstance(value, numbers.Integral):
        ok, value = True, int(value)
    elif isinstance(default, list):  # a tuple from Python, as the checks keyword takes one
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        value = list(value) if ok else value
    elif isinstance(default, str) and isinstance(value, os.PathLike):  # cache_dir=Path(...) from Python
        ok, value = True, os.fspath(value)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise UsageError(f"{name} in {origin} must be {type(default).__name__}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):  # TOML has inf and nan; no setting means them
        raise UsageError(f"{name} in {origin} must be a finite number, got {value!r}")
    return copy.deepcopy(value)


def _check_audit_value(key: str, value, origin: str, detectors: list[str]) -> None:
    """Refuse [audit] values of the right type that cannot work (``batch_size = 0``, ``seed = -1``,
    ``checks = []``) here, where file and command line meet, rather than as a crash deep in the audit."""
    # Name the option as the user wrote it: --batch-size on the command line, else audit.batch_size in FILE.
    option = f"--{key.replace('_', '-')}" if origin == "command line" else f"audit.{key} in {origin}"
    if key in AUDIT_RANGES:
        check_int_range(option, value, *AUDIT_RANGES[key])
    name, where = (option, "") if origin == "command line" else (f"audit.{key}", f" in {origin}")
    if key == "device":
        from .engine.device import check_device_spec

        check_device_spec(value, name, where)
    if key == "fail_on":
        from .gates import parse_gates

        parse_gates(value, name, where)
    if key == "checks" and not value:  # e.g. --checks , : an audit that checks nothing is a mistake, not a success
        raise UsageError(f"{option} names no detector; give one or more of: {', '.join(detectors)}")
    if key == "checks" and origin != "command line":
        # A name the registry does not know is found here, so the error names the file it is in
        # (the audit would find it later, as if --checks had named it).
        from .detectors.registry import expand_checks

        try:
            expand_checks(value)
        except UsageError as exc:
            raise UsageError(f"{option}: {exc}") from None


def render_toml(config: dict) -> str:
    """TOML text of a configuration (flat tables of scalars and string lists)."""
    lines = [
        "# datacheck configuration: every default, as built into datacheck.",
        "# Generated by `python -m datacheck.config`; pass a copy with `datacheck audit --config FILE`",
        "# and keep only what you change. Command-line options override this file.",
        "",
        "[audit]",
    ]
    for key, value in config["audit"].items():
        lines.append(f"# {AUDIT_OPTIONS[key][1]}")
        lines.append(f"{key} = {_toml_value(value)}")
    lines += ["", "[engine]"]
    for key, value in config["engine"].items():
        lines.append(f"# {ENGINE_OPTIONS[key][1]}")
        lines.append(f"{key} = {_toml_value(value)}")
    lines += ["", "# cross-validated training of the model behind label_issues and outliers (bounds:",
              "# image_size 16-1024, folds 2-100, epochs 1-10000, batch_size 2-65536, max_shift 0-64, knn_k 0-10000)",
              "[train]"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in config["train"].items()]
    for name, params in config["detectors"].items():
        lines += ["", f"[detectors.{name}]"]
        lines += [f"{key} = {_toml_value(value)}" for key, value in params.items()]
    return "\n".join(lines) + "\n"


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


if __name__ == "__main__":
    sys.stdout.write(render_toml(default_config()))
