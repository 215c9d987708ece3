"""The ``quantsearch`` command line: a thin layer over the Python API.

Each subcommand lives in its own module and imports torch only inside its body, so
``quantsearch --help`` stays fast. :func:`main` turns every error a user can cause (a
:class:`QuantsearchError`, or click's own usage errors) into one line on stderr,
``error: <option or key>: ...``, and exit status 2 — never a traceback for bad input. Ctrl-C
prints one line and exits 130. Anything else is a bug: its traceback is shown, with a line
asking to report it.
"""

from __future__ import annotations

import difflib
import os
import re
import signal
import sys
import traceback
import warnings
from typing import Any

import click

from quantsearch.cli import _commands
from quantsearch.errors import ConfigError, QuantsearchError
from quantsearch.paths import check_path_text, too_long

__all__ = ["cli", "long_argument", "main", "nul_argument"]

INTERRUPTED = (
    "interrupted: the study is kept (what finished is on disk); the same command resumes it"
)
BUG = (
    "quantsearch: internal error (a bug in quantsearch, not in your input); please report it "
    "with the traceback above and the command that caused it"
)


class _Interrupted(Exception):
    """Ctrl-C inside a command, carried past click (which would print a blank line first)."""


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise _Interrupted from None

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, cmd, rest = super().resolve_command(ctx, args)
        if cmd is not None:
            once(click.Context(cmd, info_name=name, parent=ctx), rest)
        return name, cmd, rest


def once(ctx: click.Context, args: list[str]) -> None:
    """Refuse an option given twice (``--trial 0 --trial 1``, ``--cache --no-cache``): click
    keeps the last silently, and which one the user meant is a guess."""
    _, _, order = ctx.command.make_parser(ctx).parse_args(args=list(args))
    seen: set[str | None] = set()
    for p in order:
        if isinstance(p, click.Option) and not (p.multiple or p.count or p.is_eager):
            if p.name in seen:
                raise click.BadOptionUsage(
                    max(p.opts, key=len), "got it more than once, allowed: once", ctx
                )
            seen.add(p.name)


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="quantsearch")
def cli() -> None:
    """Design-space exploration of neural-network quantization in PyTorch.

    Typical flow: `train` a model, `summary` its graph and costs, `search` quantization
    configs, `compare` strategies, `report` a run directory.
    """


_commands.register(cli)


def _hint(param: click.Parameter | None) -> str | None:
    """How the user wrote ``param``: its long option (``--n-trials``) or argument (``RUN_DIR``)."""
    if param is None:
        return None
    if isinstance(param, click.Option):
        return max(param.opts, key=len)
    return param.human_readable_name


def usage_line(exc: click.ClickException) -> str:
    """Click's usage error as one line that starts with the option or argument it is about.

    Example:
        >>> usage_line(click.NoSuchOption("--n-trails", possibilities=["--n-trials"]))
        "--n-trails: got an unknown option, allowed: the command's options (see --help) (did you mean --n-trials?)"
    """
    if isinstance(exc, click.NoSuchOption):
        ctx = exc.ctx
        opts = sorted(o for p in ctx.command.params for o in p.opts if o[:2] == "--") if ctx else []
        allowed = str(opts) if opts else "the command's options (see --help)"
        line = f"{exc.option_name}: got an unknown option, allowed: {allowed}"
        if exc.possibilities:
            line += f" (did you mean {', '.join(sorted(exc.possibilities))}?)"
    elif isinstance(exc, click.MissingParameter):
        line = f"{_hint(exc.param) or exc.param_hint}: got nothing, allowed: a value (required)"
    elif isinstance(exc, click.BadParameter):
        hint = _hint(exc.param) or exc.param_hint
        line = f"{hint}: {exc.message}" if hint else exc.format_message()
        allowed = _path_allowed(exc)
        line = f"{line.removesuffix('.')}{allowed}" if allowed else line
        line = _value_line(hint if isinstance(hint, str) else None, exc) or line
    elif isinstance(exc, click.BadOptionUsage):
        line = f"{exc.option_name}: {exc.message}"
        if re.fullmatch(r"Option '.*' requires (an argument|\d+ arguments)\.", exc.message):
            line = f"{exc.option_name}: got it without a value, allowed: {exc.option_name} VALUE"
    else:
        line = _usage_line(exc)
    return cut_long(" ".join(line.split()))  # one line, whatever click wrapped


# click's refusals of a value (click.types): what was given, then why
_CLICK_VALUE = re.compile(
    r"(?P<given>'.*'|\".*\"|\S+) is (?:not a valid [\w ]+|not in the range \S+|"
    r"not one of .+|not .+)\.",
    re.S,
)
_CLICK_PATH = re.compile(
    r"\w+ (?P<given>'.*') (?P<what>does not exist|is a file|is a directory|is not readable)\.", re.S
)
_WHAT = {
    "does not exist": "which does not exist",
    "is a file": "a file",
    "is a directory": "a folder",
    "is not readable": "not readable",
}


def _value_line(hint: str | None, exc: click.BadParameter) -> str | None:
    """Click's refusal of an option's value as ``<key>: got <given>, allowed: <allowed>``, the
    allowed values said from the parameter's type (its range, its choices, a file or a folder);
    None for a message of another shape. A given value of more than 80 characters is cut.

    Example:
        >>> p = click.Option(["--epochs"], type=click.IntRange(1, 10000))
        >>> _value_line("--epochs", click.BadParameter("0 is not in the range 1<=x<=10000.", param=p))
        '--epochs: got 0, allowed: an integer in the range 1<=x<=10000'
        >>> _value_line("--epochs", click.BadParameter("'a' is not a valid integer range.", param=p))
        "--epochs: got 'a', allowed: an integer in the range 1<=x<=10000"
    """
    kind = exc.param.type if exc.param is not None else None
    if hint is None or kind is None:
        return None
    path = _CLICK_PATH.fullmatch(exc.message)
    value = path or _CLICK_VALUE.fullmatch(exc.message)
    allowed = _allowed_of(kind)
    if value is None or allowed is None:
        return None
    given = value["given"]
    if len(given) > 80:  # its length without the quotes click put around it
        n = len(given) - 2 if given[0] in "'\"" else len(given)
        given = f"{given[:60]}... ({n} characters)"
    if path is not None:
        given += f" ({_WHAT[path['what']]})"
    return f"{hint}: got {given}, allowed: {allowed}"


def _allowed_of(kind: click.ParamType[Any]) -> str | None:
    """What a parameter of type ``kind`` takes, in words (None: a type not said here)."""
    if isinstance(kind, click.Choice):
        return f"one of {[str(c) for c in kind.choices]}"
    if isinstance(kind, click.Path):
        what = "a file or a folder" if kind.file_okay and kind.dir_okay else None
        what = what or ("a folder" if kind.dir_okay else "a file")
        return "an existing " + what.removeprefix("a ") if kind.exists else what
    number = {click.types.IntParamType: "an integer", click.types.FloatParamType: "a number"}
    for base, word in number.items():
        if isinstance(kind, base):
            if isinstance(kind, click.types._NumberRangeBase):
                return f"{word} in the range {kind._describe_range()}"
            return word
    return None


def _path_allowed(exc: click.BadParameter) -> str:
    """What a ``click.Path`` argument takes, after click's "Directory 'x' is a file." (which
    says only what was wrong), else ``""``.

    Example:
        >>> _path_allowed(click.BadParameter("Directory 'a' is a file.", param=click.Argument(
        ...     ["run_dir"], type=click.Path(file_okay=False, exists=True))))
        ', allowed: an existing folder'
    """
    kind = exc.param.type if exc.param is not None else None
    said = re.fullmatch(r"\w+ '.*' (does not exist|is a file|is a directory)\.", exc.message)
    if not isinstance(kind, click.Path) or said is None:
        return ""
    what = "a file or a folder" if kind.file_okay and kind.dir_okay else None
    what = what or ("a folder" if kind.dir_okay else "a file")
    return f", allowed: {'an existing ' + what.removeprefix('a ') if kind.exists else what}"


def _usage_line(exc: click.ClickException) -> str:
    """Click's errors that name no option, as ``<key>: <given>, <allowed>``: no command (click
    from 8.2 put the whole help text in it), an unknown one, extra arguments.

    Example:
        >>> _usage_line(click.UsageError("No such command 'serch'."))[:43]
        "COMMAND: got 'serch', allowed: one of ['com"
    """
    text = exc.format_message()
    commands = f"one of {sorted(cli.commands)}"
    unknown = re.match(r"No such command '(.*)'\.", text)
    extra = re.match(r"Got unexpected extra arguments? \((.*)\)$", text)
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, _NO_ARGS) or text == "Missing command.":
        return (
            f"COMMAND: got nothing, allowed: {commands} (`quantsearch --help` says what each does)"
        )
    if unknown:
        near = difflib.get_close_matches(unknown[1], cli.commands)
        return f"COMMAND: got {unknown[1]!r}, allowed: {commands}" + (
            f" (did you mean {near[0]!r}?)" if near else ""
        )
    if extra and ctx is not None:
        usage = " ".join([ctx.command_path, *ctx.command.collect_usage_pieces(ctx)])
        return f"{ctx.info_name}: got extra argument(s) {extra[1]!r}, allowed: {usage}"
    return text


_NO_ARGS = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click 8.1 printed the help


def nul_argument(argv: list[str]) -> str | None:
    r"""The error line for the first argument holding a NUL character, naming its option.

    No shell can pass one (arguments are C strings), but ``main([...])`` can, and every path
    operation on it raises ValueError deep inside a command.

    Example:
        >>> nul_argument(["search", "--run-dir", "a\0b"])
        "--run-dir: got 'a\\x00b', allowed: text without NUL characters"
        >>> nul_argument(["report", "a\0b"])
        "RUN_DIR: got 'a\\x00b', allowed: text without NUL characters"
    """
    for i, arg in enumerate(argv):
        if "\0" not in arg:
            continue
        name, _, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
        if not name and i and argv[i - 1].startswith("-"):
            name = argv[i - 1]
        return f"{_param_name(argv[0], name)}: got {value!r}, allowed: text without NUL characters"
    return None


def _paths() -> dict[str, set[str]]:
    """Per command, its arguments that are paths: click.Path's, and the text ones named here."""
    text_paths = {"--run-dir", "--output", "--model", "--data"}  # init's specs: file.py:fn
    return {
        name: {
            max(p.opts, key=len) if isinstance(p, click.Option) else p.human_readable_name
            for p in cmd.params
            if isinstance(p.type, click.Path) or text_paths & set(p.opts)
        }
        for name, cmd in cli.commands.items()
    }


_PATHS = _paths()


def long_argument(argv: list[str]) -> str | None:
    """The error line for the first argument too long for a path (a name past 255 bytes),
    naming its option: every ``stat()`` of it raises OSError deep inside a command. Only
    paths are checked (a count's or a name's own check says more).

    Example:
        >>> long_argument(["train", "--out", "a" * 256])
        "--out: got a name of 256 bytes ('aaaaaaaaaaaaaaaa'...), allowed: names of at most 255 bytes and paths of at most 4095 (the file system's limits)"
    """
    for i, arg in enumerate(argv):
        name, _, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
        if not name and i and argv[i - 1].startswith("-"):
            name = argv[i - 1]
        key = _param_name(argv[0], name)
        if key in _PATHS.get(argv[0], ()) and too_long(value) is not None:
            try:
                check_path_text(value, key)
            except ConfigError as exc:
                return str(exc)
    return None


def _param_name(command: str, option: str) -> str:
    """``option``'s long spelling (``-c`` -> ``--config``), or the argument's name (``RUN_DIR``)
    where ``option`` is empty and ``command`` takes one argument."""
    cmd = cli.commands.get(command)
    params = cmd.params if cmd is not None else []
    for p in params:
        if option and option in (*p.opts, *p.secondary_opts):
            return max(p.opts, key=len)
    arguments = [p for p in params if isinstance(p, click.Argument)]
    if not option and len(arguments) == 1:
        return arguments[0].human_readable_name
    return option or "argument"


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: str | None = None,
) -> None:
    """A warning of quantsearch's own (a journal repaired on open ...) as one ``warning:``
    line, as errors are one ``error:`` line; any other as Python shows it."""
    if category.__module__.startswith("quantsearch."):
        text = " ".join(str(message).splitlines())
        if text not in _shown:  # one text from two call sites (a search's float baseline and
            _shown.add(text)  # its trials measure the same softmax output) is one line
            click.echo(f"warning: {text}", err=True)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)  # type: ignore[arg-type]


_python_show_warning = warnings.showwarning
_shown: set[str] = set()  # the warning lines this command printed


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    warnings.showwarning = _show_warning
    _shown.clear()
    args = sys.argv[1:] if argv is None else list(argv)  # click reads sys.argv for None
    bad = nul_argument(args) or long_argument(args) if args else None
    if bad is not None:
        click.echo(f"error: {bad}", err=True)
        sys.exit(2)
    # this process's own command, where Ctrl-C is heard (a background job of a script
    # inherits SIGINT ignored: SIGTERM then keeps killing it, or nothing could)
    if argv is None and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGTERM, _terminate)
    try:
        cli.main(args=argv, standalone_mode=False, prog_name="quantsearch")
    except QuantsearchError as exc:
        click.echo(f"error: {cut_long(' '.join(str(exc).splitlines()))}", err=True)
        sys.exit(2)
    except (_Interrupted, click.exceptions.Abort, KeyboardInterrupt):
        _exiting(argv)
        click.echo(INTERRUPTED, err=True)
        sys.exit(143 if _terminated else 130)  # 128 + the signal, as a shell reports it
    except click.ClickException as exc:
        click.echo(f"error: {usage_line(exc)}", err=True)
        sys.exit(2)
    except Exception:
        traceback.print_exc()
        click.echo(BUG, err=True)
        sys.exit(1)
    finally:
        _exiting(argv)


_LONG_QUOTED = re.compile(r"'([^']{1000,})'")


def cut_long(line: str) -> str:
    """``line`` with each quoted value of 1,000 characters or more cut to its first 60 (a
    pasted file or a runaway script's value is not echoed whole).

    Example:
        >>> cut_long("--device: got '" + "x" * 5000 + "', allowed: 'cpu'")[:40]
        "--device: got 'xxxxxxxxxxxxxxxxxxxxxxxxx"
        >>> cut_long("--device: got '" + "x" * 5000 + "', allowed: 'cpu'")[-40:]
        "x... (5000 characters)', allowed: 'cpu'"
    """
    return _LONG_QUOTED.sub(lambda m: f"'{m[1][:60]}... ({len(m[1])} characters)'", line)


_terminated: list[int] = []  # the SIGTERM that stopped this process's command, if one did


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (a scheduler's, ``docker stop``, ``kill``) stops a command as Ctrl-C does: the
    trial being evaluated is dropped, what finished reaches the disk, one line, exit 143. It
    is a SIGINT sent to this process, so that it meets the same deferral, shielding and
    ignoring as one (:mod:`quantsearch.search.interrupt`); before, it killed the process where
    it stood, without a line, and what group commit held back was lost."""
    _terminated.append(signum)
    os.kill(os.getpid(), signal.SIGINT)


def _exiting(argv: list[str] | None) -> None:
    """The command is over: in this process's own command (``argv`` None), a Ctrl-C from now
    on is ignored. It could only cut the interpreter's exit: atexit's journal flush, with a
    traceback, or the second of module teardown, where Python has put SIGINT back to its
    default and the process died of it, silently, after its work was done (exit -2)."""
    if argv is None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
