"""The ``ptyloss-xp`` command.

Subcommands: ``demo`` (simulate and reconstruct a ptychography dataset),
``gradcheck`` (every registered loss against finite differences),
``config check FILE`` (resolve a PtyRAD params file's loss_params), ``list`` and ``docs``
(the catalogue generated from the registry).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import _registry
from ._backend import BACKENDS, backend_namespace
from .ptycho.params import resolve_loss_params

__all__ = ["main", "catalogue_markdown"]


def _gradcheck(args) -> int:
    from .testing import check_grad, sample_inputs

    xp = backend_namespace(args.backend)
    names = args.loss or _registry.available(args.family)
    rtol = 1e-7 if args.dtype == "float64" else 2e-3
    rows, failed = [], 0
    for name in names:
        cls = _registry.loss_class(name)
        for case in ({},) + cls.param_cases:
            loss = cls(**case)
            arrays = sample_inputs(loss, xp=xp, dtype=args.dtype, seed=args.seed)
            err = check_grad(loss, **arrays, rtol=rtol, raise_on_fail=False).max_rel_error
            ok = err <= rtol
            failed += not ok
            params = ", ".join(f"{k}={v!r}" for k, v in case.items()) or "defaults"
            rows.append((name, params, f"{err:.2e}", "ok" if ok else "FAIL"))
    widths = [max(len(r[i]) for r in rows + [("loss", "params", "rel. error", "")])
              for i in range(4)]
    head = ("loss", "params", "rel. error", "")
    print(f"backend {args.backend}, dtype {args.dtype}, tolerance {rtol:g}")
    for r in [head] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print(f"{len(rows) - failed} passed, {failed} failed")
    return 1 if failed else 0


def _config_check(args) -> int:
    resolved = resolve_loss_params(args.file)
    print(f"{args.file}: valid; the terms PtyRAD 1.0 runs, each setting from the file or "
          "PtyRAD 1.0's default:")
    print(resolved.describe())
    return 0


def _list(args) -> int:
    for name in _registry.available(args.family):
        cls = _registry.loss_class(name)
        print(f"{name:32s} {cls.family:16s} wrt {', '.join(cls(**{}).wrt)}")
    return 0


def catalogue_markdown() -> str:
    """The loss catalogue as Markdown, generated from the registry."""
    lines = [
        "# Loss catalogue",
        "",
        "Generated from the registry by `ptyloss-xp docs --out docs/catalogue.md`;",
        "a test fails when this file and the registry disagree. `M` is the number",
        "of elements averaged over. Gradients follow the convention",
        "`dL/dRe + 1j dL/dIm` for complex inputs.",
        "",
    ]
    by_family: dict = {}
    for name in _registry.available():
        by_family.setdefault(_registry.loss_class(name).family, []).append(name)
    for family in sorted(by_family):
        lines += [f"## {family}", "",
                  "| name | value | gradient | inputs (domain) | parameters (default) | counterpart and differences |",
                  "|---|---|---|---|---|---|"]
        for name in by_family[family]:
            cls = _registry.loss_class(name)
            loss = cls()
            inputs = "<br>".join(
                f"`{a.name}`{' (wrt)' if a.grad else ''}: {a.describe()}" for a in loss.args)
            params = "<br>".join(f"`{k}` = `{v!r}`" for k, v in loss.config.items()) or "none"
            cells = [f"`{name}`", f"${cls.formula}$", _math_cell(cls.gradient),
                     inputs, params, cls.reference]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _math_cell(text: str) -> str:
    # The first clause is the formula; what follows "; " is prose.
    math, _, note = text.partition("; ")
    return f"${math}$" + (f"; {note}" if note else "")


def _docs(args) -> int:
    text = catalogue_markdown()
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0


def _parser():
    p = argparse.ArgumentParser(prog="ptyloss-xp", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="simulate a ptychography dataset and reconstruct it")
    demo.set_defaults(func=_demo)
    _demo_module().add_arguments(demo)

    g = sub.add_parser("gradcheck", help="check every registered loss against finite differences")
    g.add_argument("--backend", choices=BACKENDS, default="numpy")
    g.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    g.add_argument("--family", help="only this family")
    g.add_argument("--loss", action="append", help="only this loss (repeatable)")
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(func=_gradcheck)

    c = sub.add_parser("config", help="loss_params files")
    csub = c.add_subparsers(dest="action", required=True)
    cc = csub.add_parser("check", help="resolve a PtyRAD params file's loss_params as PtyRAD 1.0 "
                                       "does and print every term's settings and their origin")
    cc.add_argument("file", help="a PtyRAD params file or loss_params block: .yaml, .yml, .json "
                                 "or .toml")
    cc.set_defaults(func=_config_check)

    ls = sub.add_parser("list", help="list the registered losses")
    ls.add_argument("--family")
    ls.set_defaults(func=_list)

    d = sub.add_parser("docs", help="write the loss catalogue (Markdown)")
    d.add_argument("--out", help="file to write (default: standard output)")
    d.set_defaults(func=_docs)
    return p


def _demo_module():
    return importlib.import_module("ptyloss_xp.demo")


def _demo(args) -> int:
    return _demo_module().run(args)


def main(argv=None) -> int:
    """Entry point; returns the exit status. Bad input is one line on stderr."""
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        # One message argument (KeyError's str() would quote it); else str().
        text = exc.args[0] if len(exc.args) == 1 else str(exc)
        print(f"ptyloss-xp: error: {text}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
