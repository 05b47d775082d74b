"""PtyRAD 1.0 ``loss_params``: reading params files and resolving the terms.

PtyRAD 1.0 validates ``loss_params`` with a pydantic model
(``ptyrad/params/loss_params.py``, Lee et al. 2025). :func:`resolve_loss_params`
gives the terms and settings PtyRAD 1.0 runs for the same file: a term or
key that is not listed takes PtyRAD's field default (``loss_single`` on,
every other term off), a file without a ``loss_params`` block gets all the
defaults, values are converted as pydantic's lax mode converts them (the
YAML string ``"1e-6"`` is the number 1e-6, ``state: "yes"`` is true) and
PtyRAD's ranges apply. ptyloss_xp refuses a few settings PtyRAD 1.0 accepts
(a ``dp_pow`` or ``scale_factor`` <= 0, numbers that are not finite, a term
or key listed twice) and does not execute Python params files; docs/ptycho.md
lists every such place.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
from dataclasses import dataclass
from importlib import resources

import yaml

from .._registry import loss_class
from .._validate import Param

__all__ = ["PTYRAD_LOSS_PARAMS", "ResolvedLossParams", "ptyrad_example_loss_params",
           "read_params_file", "resolve_loss_params"]

DATA_TERMS = ("loss_single", "loss_poissn", "loss_pacbed")
PTYRAD_TERMS = DATA_TERMS + ("loss_sparse", "loss_simlar")
TERMS = PTYRAD_TERMS + ("loss_tv",)

# The top-level keys of a PtyRAD 1.0 params file (PtyRADParams); params_path
# is what ``ptyrad.params.load_params`` adds to the dict it returns.
PTYRAD_BLOCKS = ("init_params", "hypertune_params", "model_params", "loss_params",
                 "constraint_params", "recon_params")
_TOP_LEVEL = PTYRAD_BLOCKS + ("params_path",)

_STATE_ON = Param(True, kind="bool")
_STATE_OFF = Param(False, kind="bool")
_OBJ_TYPE = Param("both", kind="choice", choices=("amplitude", "phase", "both"))

# PtyRAD 1.0's pydantic model as data: term -> key -> Param holding PtyRAD's
# field default, type and range (ptyloss_xp's own ranges are on the terms).
PTYRAD_LOSS_PARAMS = {
    "loss_single": {"state": _STATE_ON, "weight": Param(1.0, low=0.0), "dp_pow": Param(0.5)},
    "loss_poissn": {"state": _STATE_OFF, "weight": Param(1.0, low=0.0), "dp_pow": Param(1.0),
                    "eps": Param(1e-6, low=0.0, low_open=True)},
    "loss_pacbed": {"state": _STATE_OFF, "weight": Param(0.5, low=0.0), "dp_pow": Param(0.2)},
    "loss_sparse": {"state": _STATE_OFF, "weight": Param(0.1, low=0.0),
                    "ln_order": Param(1, kind="int", low=1)},
    "loss_simlar": {"state": _STATE_OFF, "weight": Param(0.1, low=0.0), "obj_type": _OBJ_TYPE,
                    "scale_factor": Param((1.0, 1.0, 1.0), kind="floats", length=3),
                    "blur_std": Param(1.0, low=0.0)},
}

_STRICTER = ("PtyRAD 1.0 accepts this value, ptyloss_xp refuses it "
             "(docs/ptycho.md, 'Where ptyloss_xp is stricter than PtyRAD 1.0')")


class _Refused(Exception):
    """A value PtyRAD 1.0's pydantic model refuses."""


def _schema(term):
    if term in PTYRAD_LOSS_PARAMS:
        return PTYRAD_LOSS_PARAMS[term]
    return {"state": _STATE_OFF, **loss_class(term).params}


# ---------------------------------------------------------------- pydantic's lax conversions

_TRUE = {"1", "on", "t", "true", "y", "yes"}
_FALSE = {"0", "off", "f", "false", "n", "no"}


def _to_float(v):
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            raise _Refused from None
    if isinstance(v, numbers.Real):  # bool is an int: true -> 1.0, as pydantic
        try:
            return float(v)
        except OverflowError:
            raise _Refused from None
    raise _Refused


def _to_int(v):
    if isinstance(v, str):
        s = v.strip()
        # pydantic reads "2.000" as 2 but not "2.5" or "2e0".
        m = re.fullmatch(r"([+-]?[0-9_]+)\.0*", s)
        try:
            return int(m.group(1) if m else s)
        except ValueError:
            raise _Refused from None
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        # pydantic converts integral floats that fit a 64-bit integer.
        v = float(v)
        if not (math.isfinite(v) and v.is_integer() and abs(v) < 2.0**63):
            raise _Refused
        return int(v)
    raise _Refused


def _to_bool(v):
    if isinstance(v, bool):
        return v
    if isinstance(v, numbers.Real) and v in (0, 1):
        return v == 1
    if isinstance(v, str) and v.lower() in _TRUE | _FALSE:
        return v.lower() in _TRUE
    raise _Refused


def _in_range(p, v):
    # pydantic's ge/gt: NaN fails every bound, infinity passes a lower one.
    return p.low is None or (v > p.low if p.low_open else v >= p.low)


def _as_pydantic(p: Param, v):
    """``v`` converted as pydantic's lax mode does for ``p``; ``_Refused`` if PtyRAD would."""
    if p.kind == "bool":
        return _to_bool(v)
    if p.kind == "choice":
        if not (isinstance(v, str) and v in p.choices):
            raise _Refused
        return v
    if p.kind == "floats":
        if not isinstance(v, (list, tuple)) or len(v) != p.length:
            raise _Refused
        out = tuple(_to_float(x) for x in v)
    else:
        out = (_to_int if p.kind == "int" else _to_float)(v)
    for x in out if p.kind == "floats" else (out,):
        if not _in_range(p, x):
            raise _Refused
    return out


# ---------------------------------------------------------------- reading files

class _Mapping(dict):
    """A dict that remembers the keys its source listed more than once."""

    duplicates: tuple = ()


def _yaml_map(loader, node):
    data = _Mapping()
    yield data
    # Merged keys (<<: *anchor) may legitimately be overridden; only count
    # the keys written in this mapping.
    keys = [loader.construct_object(k) for k, _ in node.value
            if k.tag != "tag:yaml.org,2002:merge"]
    data.update(loader.construct_mapping(node))
    data.duplicates = tuple(k for i, k in enumerate(keys) if k in keys[:i])


class _SafeLoader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader (no Python tags) that records repeated keys."""


_SafeLoader.add_constructor("tag:yaml.org,2002:map", _yaml_map)


def _json_object(pairs):
    data = _Mapping(pairs)
    keys = [k for k, _ in pairs]
    data.duplicates = tuple(k for i, k in enumerate(keys) if k in keys[:i])
    return data


_PY_FILE = ("{path}: Python params files are not read: ptyloss_xp does not execute code from a "
            "params file (PtyRAD 1.0 imports it). Pass its names yourself, e.g. "
            "CombinedLoss(runpy.run_path(path)), or write the loss_params block as YAML, JSON "
            "or TOML")


def _toml(where):
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        try:
            import tomli as tomllib
        except ImportError:
            msg = f"{where}: reading TOML on Python < 3.11 needs the tomli package: pip install tomli"
            raise ValueError(msg) from None
    return tomllib


def read_params_file(path) -> object:
    """The data of a PtyRAD params file, read by its suffix as PtyRAD 1.0 does.

    ``.yaml``/``.yml`` with ``yaml.safe_load``'s rules (YAML 1.1, no Python
    tags), ``.json`` and ``.toml``, all as UTF-8 text. Python files (``.py``)
    are refused with a message: PtyRAD 1.0 imports them, ptyloss_xp does not
    run code from a params file. Mappings that list a key twice remember it
    (``duplicates``), so that the ``loss_params`` block can be refused.

    Raises
    ------
    FileNotFoundError
        No such file.
    IsADirectoryError
        ``path`` is a directory.
    ValueError
        Not UTF-8, not valid for its format, or an unknown suffix; the
        message names the file.
    """
    where = os.fspath(path)
    if os.path.isdir(where):
        raise IsADirectoryError(f"{where}: is a directory, not a params file")
    if not os.path.exists(where):
        raise FileNotFoundError(f"loss_params file not found: {where}")
    suffix = os.path.splitext(where)[1]
    if suffix == ".py":
        raise ValueError(_PY_FILE.format(path=where))
    if suffix not in (".yaml", ".yml", ".json", ".toml"):
        msg = (f"{where}: unknown params file type {suffix or '(no suffix)'!r}; "
               "PtyRAD 1.0 and ptyloss_xp read .yaml, .yml, .json and .toml")
        raise ValueError(msg)
    try:
        with open(where, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ValueError(f"{where}: cannot read the file ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        msg = (f"{where}: not a UTF-8 text file (byte 0x{raw[exc.start]:02x} at offset "
               f"{exc.start}); params files are read as UTF-8, as PtyRAD 1.0 reads them")
        raise ValueError(msg) from None
    toml = _toml(where) if suffix == ".toml" else None
    try:
        if suffix == ".json":
            return json.loads(text, object_pairs_hook=_json_object)
        if toml is not None:
            return toml.loads(text)
        return yaml.load(text, Loader=_SafeLoader)  # noqa: S506 (a SafeLoader)
    # JSON's and TOML's decode errors are ValueErrors.
    except (ValueError, yaml.YAMLError) as exc:
        kind = {".json": "JSON", ".toml": "TOML"}.get(suffix, "YAML")
        msg = f"{where}: not valid {kind} ({exc})".replace("\n", " ")
        raise ValueError(msg) from None


# ---------------------------------------------------------------- resolving

@dataclass(frozen=True)
class ResolvedLossParams:
    """The terms and settings PtyRAD 1.0 runs for one ``loss_params`` source.

    Attributes
    ----------
    terms : dict
        ``{term: {"state": bool, key: value, ...}}`` for PtyRAD's five terms
        (and ``loss_tv`` when listed), every key filled in; values are
        ptyloss_xp's normalised parameters (``scale_factor`` a tuple).
    origin : dict
        ``{term: {key: "file" | "default"}}``: whether each setting was
        given in the source or is PtyRAD 1.0's field default.
    source : str
        The file read, or ``"mapping"``.
    block : bool
        Whether the source has a ``loss_params`` block (a bare block counts).
    notes : tuple of str
        What the user should know about this source: defaults used for a
        missing block, terms PtyRAD 1.0 does not have.
    """

    terms: dict
    origin: dict
    source: str = "mapping"
    block: bool = True
    notes: tuple = ()

    def describe(self) -> str:
        """One line per term: its state and each setting with its origin."""
        lines = []
        for term, cfg in self.terms.items():
            org = self.origin[term]
            state = f"{'on' if cfg['state'] else 'off'} ({org['state']})"
            settings = ", ".join(f"{k}={v!r} ({org[k]})" for k, v in cfg.items() if k != "state")
            lines.append(f"{term:12s}  {state:15s}  {settings}")
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def _find_block(data, where):
    """The ``loss_params`` block of a params mapping, ``None`` when a whole file has none."""
    if not isinstance(data, dict):
        what = "an empty file" if data is None else type(data).__name__
        raise ValueError(f"{where}: expected a mapping (a params file or a loss_params block), got {what}")
    # PtyRAD 1.0 drops the dunder names of a Python params module; having
    # them marks the names of a module, a whole params file.
    keys = [k for k in data if not (isinstance(k, str) and k.startswith("__"))]
    if len(keys) == len(data) and not any(k in PTYRAD_BLOCKS for k in keys):
        return data
    unknown = [k for k in keys if k not in _TOP_LEVEL]
    if unknown:
        msg = (f"{where}: unknown top-level key(s) {', '.join(map(repr, unknown))} in a PtyRAD "
               f"params file; PtyRAD 1.0 refuses them too. Its blocks: {', '.join(PTYRAD_BLOCKS)}")
        raise ValueError(msg)
    if getattr(data, "duplicates", ()) and "loss_params" in data.duplicates:
        raise ValueError(f"{where}: 'loss_params' is given more than once; give it once")
    if "loss_params" not in data:
        return None
    block = data["loss_params"]
    if block is None:
        msg = (f"{where}: 'loss_params' is empty (null); PtyRAD 1.0 refuses it too. Remove the "
               "key for PtyRAD's defaults, or write loss_params: {}")
        raise ValueError(msg)
    return block


def resolve_loss_params(source=None) -> ResolvedLossParams:
    """Resolve ``loss_params`` exactly as PtyRAD 1.0 does.

    Parameters
    ----------
    source : mapping, path or None
        ``None``: PtyRAD 1.0's defaults (``loss_single`` alone). A mapping:
        a whole params dict (any of PtyRAD's blocks at the top level, such
        as the dict ``ptyrad.params.load_params`` returns or the names of a
        Python params module) or a bare block of terms. A path: a PtyRAD
        params file (``.yaml``, ``.yml``, ``.json``, ``.toml``; see
        :func:`read_params_file`) holding either.

    Returns
    -------
    ResolvedLossParams
        Every term's state and settings, each marked as given or defaulted.

    Raises
    ------
    ValueError
        What PtyRAD 1.0 refuses (unknown term, key or top-level block, a
        value of the wrong type or out of PtyRAD's range, no data term on),
        and what ptyloss_xp refuses beyond it (see docs/ptycho.md): the
        message names the file, the term, the key and the value.

    Examples
    --------
    >>> from ptyloss_xp.ptycho.params import resolve_loss_params
    >>> r = resolve_loss_params({"loss_sparse": {"state": True}})
    >>> [t for t, c in r.terms.items() if c["state"]]
    ['loss_single', 'loss_sparse']
    >>> r.origin["loss_sparse"]["state"], r.origin["loss_sparse"]["weight"]
    ('file', 'default')
    >>> resolve_loss_params({"init_params": {}}).notes[0]
    "no loss_params block: PtyRAD 1.0's defaults"
    """
    where = "loss_params"
    if isinstance(source, (str, os.PathLike)):
        where = os.fspath(source)
        source = read_params_file(source)
    elif source is None:
        source = {}
    block = _find_block(source, where)
    found, notes = block is not None, []
    if not found:
        block = {}
        notes.append("no loss_params block: PtyRAD 1.0's defaults")
    if not isinstance(block, dict):
        msg = f"{where}: loss_params must be a mapping of loss terms, got {type(block).__name__}"
        raise ValueError(msg)
    _refuse_duplicates(block, where, "loss_params")
    unknown = [t for t in block if t not in TERMS]
    if unknown:
        msg = f"{where}: unknown loss term {unknown[0]!r}; valid terms: {', '.join(TERMS)}"
        raise ValueError(msg)
    terms, origin = {}, {}
    for term in TERMS:
        if term in block:
            terms[term], origin[term] = _resolve_term(term, block[term], where)
        elif term in PTYRAD_TERMS:
            terms[term], origin[term] = _resolve_term(term, {}, where)
    if "loss_tv" in block:
        notes.append("loss_tv is a ptyloss_xp term: PtyRAD 1.0 refuses a file that lists it")
    if not any(terms[t]["state"] for t in DATA_TERMS):
        msg = (f"{where}: at least one data-error term ({', '.join(DATA_TERMS)}) must have "
               "state: true (PtyRAD 1.0 requires it too)")
        raise ValueError(msg)
    return ResolvedLossParams(terms, origin, where, found, tuple(notes))


def _refuse_duplicates(mapping, where, what):
    dups = getattr(mapping, "duplicates", ())
    if dups:
        msg = (f"{where}: {what}: {dups[0]!r} is listed more than once (PtyRAD 1.0 would "
               "silently keep the last one); list it once")
        raise ValueError(msg)


def _resolve_term(term, spec, where):
    if not isinstance(spec, dict):
        msg = (f"{where}: {term} must be a mapping of its settings, got {spec!r} "
               "(PtyRAD 1.0 refuses it too)")
        raise ValueError(msg)
    _refuse_duplicates(spec, where, term)
    schema = _schema(term)
    unknown = [k for k in spec if k not in schema]
    if unknown:
        msg = (f"{where}: {term}: unknown key(s) {', '.join(map(repr, unknown))}; "
               f"valid keys: {', '.join(schema)}")
        raise ValueError(msg)
    given = {}
    for key, value in spec.items():
        p = schema[key]
        try:
            given[key] = _as_pydantic(p, value)
        except _Refused:
            allowed = "true or false" if p.kind == "bool" else p.allowed()
            also = " (PtyRAD 1.0 refuses it too)" if term in PTYRAD_LOSS_PARAMS else ""
            msg = f"{where}: {term}: '{key}' must be {allowed}, got {value!r}{also}"
            raise ValueError(msg) from None
    params = {k: given.get(k, p.default) for k, p in schema.items() if k != "state"}
    try:
        built = loss_class(term)(**params)
    except (TypeError, ValueError) as exc:
        also = f"; {_STRICTER}" if term in PTYRAD_LOSS_PARAMS else ""
        raise ValueError(f"{where}: {exc}{also}") from None
    cfg = {"state": given.get("state", schema["state"].default), **built.config}
    return cfg, {k: "file" if k in given else "default" for k in cfg}


def ptyrad_example_loss_params() -> ResolvedLossParams:
    """PtyRAD's documented example block, with ``loss_sparse`` on; the demo runs it.

    Read from ``ptyrad_example_loss_params.yaml`` beside this module. It is
    not PtyRAD 1.0's default, which is ``loss_single`` alone.

    Examples
    --------
    >>> from ptyloss_xp.ptycho.params import ptyrad_example_loss_params
    >>> [t for t, c in ptyrad_example_loss_params().terms.items() if c["state"]]
    ['loss_single', 'loss_sparse']
    """
    ref = resources.files(__package__).joinpath("ptyrad_example_loss_params.yaml")
    with resources.as_file(ref) as path:
        return resolve_loss_params(path)
