"""Load a user callable from ``"path/to/file.py:name"`` or ``"package.module:name"``."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from quantsearch.errors import ConfigError, with_article
from quantsearch.paths import check_path_text, not_a_file

__all__ = ["is_callable_spec", "load_callable"]


def is_callable_spec(spec: str) -> bool:
    """True when ``spec`` looks like ``module:attr`` or ``file.py:attr`` rather than a name."""
    return ":" in spec


def load_callable(spec: str, *, key: str, base_dir: Path | None = None) -> Callable[..., Any]:
    """Import ``spec`` and return the named callable.

    Args:
        spec: ``"file.py:build"`` (a relative path is looked up in ``base_dir``, the config
            file's folder, and nowhere else) or ``"package.module:build"``.
        key: the config key the spec came from, named in errors.
        base_dir: folder for relative file paths; the working directory when ``None``.
    """
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise ConfigError(f"{key}: got {spec!r}, allowed: 'file.py:function' or 'module:function'")
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target).expanduser()
        if not path.is_absolute() and base_dir is not None:
            # Only there: a same-named file in the working directory must not run instead.
            path = base_dir / path
        check_path_text(str(path), key)  # a name past 255 bytes: is_file() raises OSError
        if not path.is_file():  # a folder or a FIFO "did not exist"
            where = f" in {str(base_dir)!r}" if base_dir is not None else ""
            odd = not_a_file(path)
            what = f"is {odd}" if odd else "does not exist"
            raise ConfigError(
                f"{key}: got {spec!r}, whose file {target!r} {what}{where}, allowed: "
                "file.py:function naming a Python file"
            )
        mod_name = f"quantsearch_user_{path.stem}_{abs(hash(str(path.resolve())))}"
        loader_spec = importlib.util.spec_from_file_location(mod_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise ConfigError(
                f"{key}: got {spec!r}, whose file {target!r} cannot be imported as Python, "
                "allowed: file.py:function naming a Python file"
            )
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[mod_name] = module
        try:
            loader_spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:  # sys.exit(0) at import ended us silently
            del sys.modules[mod_name]
            raise ConfigError(
                f"{key}: got {spec!r}, whose import failed ({type(exc).__name__}: {exc}), "
                f"allowed: a file that imports ({target!r} raised)"
            ) from exc
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise ConfigError(
                f"{key}: got {spec!r}, whose module {target!r} cannot be imported ({exc}), "
                "allowed: an importable package.module:function or file.py:function"
            ) from exc
        except (Exception, SystemExit) as exc:  # its own code failed at import
            raise ConfigError(
                f"{key}: got {spec!r}, whose import failed ({type(exc).__name__}: {exc}), "
                f"allowed: a module that imports ({target!r} raised)"
            ) from exc
    try:
        fn: object = getattr(module, attr)
    except AttributeError:
        names = sorted(
            n for n in vars(module) if not n.startswith("_") and callable(getattr(module, n))
        )
        raise ConfigError(
            f"{key}: got {spec!r}, but {target!r} has no attribute {attr!r}, allowed: one of "
            f"the callables there: {names}"
        ) from None
    if not callable(fn):
        raise ConfigError(
            f"{key}: got {spec!r}, {with_article(type(fn).__name__)}, allowed: a callable"
        )
    return fn
