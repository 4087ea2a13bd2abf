"""Command-line options generated from a stage's pydantic config, so the CLI, the YAML stage and
the Python API share one definition: option `--field-name`, type and choices, default and help all
come from the model's fields.

- `config_options(Model, exclude=..., names=..., overrides=...)` decorates a click command with
  the options of a config's fields; `ConfigCommand` does the same the first time the command's
  options are needed (help, parsing, completion), so `corpus --help` imports no config module.
- `config_from_options(Model, values)` builds the config from the parsed options (an option whose
  default is None leaves its field unset); a ValidationError becomes the one line
  `--option-name: message`.
- `global_flags` adds -q/--quiet and --debug to a command or group; `FlagGroup` adds them to
  every command it holds, so they are accepted before or after any subcommand.
"""

from __future__ import annotations

import importlib
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal

import click
from click.core import ParameterSource

from corpus.errors import CorpusError, first_error


def load(spec: str | Any) -> Any:
    """`module:attribute` -> the attribute (imported now); anything else as it is."""
    if not isinstance(spec, str):
        return spec
    module, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module), attribute)


class Parsed(click.ParamType):
    """A value turned into what the config takes by a function (`module:function`, imported when
    the option is parsed): `insurance=0.3,general=0.7` -> a dict, `16,32` -> a (rank, alpha) pair."""

    def __init__(self, parse: str | Callable[[str], Any], name: str = "TEXT"):
        self.parse, self.name = parse, name

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value  # a default, already parsed
        return load(self.parse)(value)


class GreedyOption(click.Option):
    """An option taking one or more values (`--against A B C`), and repeatable: it takes the
    arguments after it up to the next option, as argparse's nargs="+" did."""

    def __init__(self, *args, **kwargs):
        kwargs["multiple"] = True
        super().__init__(*args, **kwargs)

    def add_to_parser(self, parser, ctx) -> None:
        super().add_to_parser(parser, ctx)
        for opt in self.opts:
            parsed = parser._long_opt.get(opt) or parser._short_opt.get(opt)
            if parsed is not None:
                break
        store = parsed.process

        def take_the_rest(value, state) -> None:
            store(value, state)
            while state.rargs and not (state.rargs[0].startswith("-") and len(state.rargs[0]) > 1):
                store(state.rargs.pop(0), state)

        parsed.process = take_the_rest


# ---------------------------------------------------------------- one option per field


def _unwrap_optional(annotation):
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def option_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def field_option(model, field: str, decls: str | tuple[str, ...] | None = None, **override) -> click.Option:
    """The click option of one config field. `override` replaces what is derived (type, default,
    help, required, metavar, greedy=True for a list taking several values after one flag)."""
    from pydantic_core import PydanticUndefined

    info = model.model_fields[field]
    decls = (decls,) if isinstance(decls, str) else tuple(decls or (option_name(field),))
    annotation = _unwrap_optional(info.annotation)
    origin = typing.get_origin(annotation)
    has_default = info.default is not PydanticUndefined or info.default_factory is not None
    attrs: dict[str, Any] = {"help": info.description, "required": not has_default}
    if has_default:
        attrs["default"] = info.get_default(call_default_factory=True)
    greedy = override.pop("greedy", False)
    if "type" in override:
        pass
    elif annotation is bool:  # --x/--no-x: either value can be given, whatever the default
        if not any("/" in d for d in decls):
            decls = tuple(f"{d}/--no-{d[2:]}" if d.startswith("--") else d for d in decls)
        attrs["is_flag"] = True
    elif annotation in (int, float, str):
        attrs["type"] = {int: click.INT, float: click.FLOAT, str: click.STRING}[annotation]
    elif origin is Literal:
        attrs["type"] = click.Choice([str(c) for c in typing.get_args(annotation)])
    elif origin is list and typing.get_args(annotation) in ((str,), (int,), (float,)):
        attrs["multiple"] = True
        attrs["type"] = {str: click.STRING, int: click.INT, float: click.FLOAT}[typing.get_args(annotation)[0]]
        attrs["default"] = tuple(attrs.get("default") or ())
    else:
        raise TypeError(f"{model.__name__}.{field}: no command-line form for {info.annotation}; exclude it or give its type")
    attrs.update(override)
    if attrs.get("default") is None and "default" in attrs and not attrs.get("multiple"):
        attrs.pop("default")
    if attrs.get("required"):
        attrs.pop("default", None)
    if "default" in attrs and not attrs.get("is_flag") and attrs["default"] not in ((), None):
        attrs.setdefault("show_default", True)
    cls = GreedyOption if greedy else click.Option
    if greedy:
        attrs.pop("multiple", None)
    return cls([*decls, field], **attrs)


def generated_options(model, exclude=(), names: Mapping | None = None, overrides: Mapping | None = None) -> list[click.Option]:
    """The options of every field of `model` but those in `exclude`, in the model's order."""
    model = load(model)
    names, overrides = dict(names or {}), dict(overrides or {})
    unknown = (set(exclude) | set(names) | set(overrides)) - set(model.model_fields)
    if unknown:
        raise TypeError(f"{model.__name__} has no field {sorted(unknown)}")
    return [field_option(model, f, names.get(f), **overrides.get(f, {})) for f in model.model_fields if f not in exclude]


def config_options(model, exclude=(), names: Mapping | None = None, overrides: Mapping | None = None):
    """Decorator: the command takes an option for every field of `model` (see generated_options)."""

    def decorate(f):
        params = getattr(f, "__click_params__", [])
        # click reverses the decorators' list when it makes the command: keep the model's order
        params.extend(reversed(generated_options(model, exclude, names, overrides)))
        f.__click_params__ = params
        return f

    return decorate


TRAILING = ("tasks", "workers", "executor", "overwrite", "quiet", "debug")  # listed after the config's options


class ConfigCommand(click.Command):
    """A command whose options include those generated from its config; the config (given as
    `module:Class`) is imported the first time the options are needed, not when the CLI starts."""

    def __init__(self, *args, config: str, exclude=(), names: Mapping | None = None, overrides: Mapping | None = None, **kwargs):
        self.config, self.exclude, self.names, self.overrides = config, tuple(exclude), names, overrides
        self._all: list[click.Parameter] | None = None
        super().__init__(*args, **kwargs)

    @property
    def params(self) -> list[click.Parameter]:
        if self._all is None:  # one list from then on: click appends its help option to it and pops it
            last = [p for p in self._explicit if p.name in TRAILING]
            first = [p for p in self._explicit if p.name not in TRAILING]
            self._all = first + generated_options(self.config, self.exclude, self.names, self.overrides) + last
        return self._all

    @params.setter
    def params(self, value: list[click.Parameter]) -> None:
        self._explicit, self._all = list(value), None


def config_from_options(model, values: Mapping | Any, *, extra: Mapping | None = None, error: type[Exception] = CorpusError,
                        messages_name_options: bool = False):  # fmt: skip
    """The config from the parsed options (a mapping or a namespace) plus `extra` values.

    Every field's value is passed (and so validated, as a YAML stage's are) but None, which leaves
    the field at the model's default and unset, and a repeatable option not given, which leaves a
    list field at the model's default. The first validation error becomes one line naming the
    option: `--min-chars: Input should be greater than or equal to 0`."""
    from pydantic import ValidationError

    model = load(model)
    values = values if isinstance(values, Mapping) else vars(values)
    ctx = click.get_current_context(silent=True)
    chosen: dict[str, Any] = {}
    for field, info in model.model_fields.items():
        value = values.get(field)
        if value is None:
            continue
        if isinstance(value, (tuple, list)) and typing.get_origin(_unwrap_optional(info.annotation)) is list:
            if not value and ctx is not None and ctx.get_parameter_source(field) in (ParameterSource.DEFAULT, None):
                continue
            value = list(value)
        chosen[field] = value
    chosen.update(extra or {})
    try:
        return model(**chosen)
    except ValidationError as e:
        raise error(validation_line(e, ctx, messages_name_options)) from None


def _options_of(ctx) -> dict[str, str]:
    if ctx is None:
        return {}
    return {p.name: max(p.opts, key=len) for p in ctx.command.params if isinstance(p, click.Option) and p.name}


def validation_line(e, ctx=None, messages_name_options: bool = False) -> str:
    """A ValidationError's first error as one line: `--option: message`, or for a rule across
    fields (a model validator, which has no field) the rule's own message."""
    loc, message, _ = first_error(e)
    options = _options_of(ctx)
    if messages_name_options:
        for field, opt in options.items():
            if "_" in field:
                message = message.replace(field, opt)
    if not loc:
        return message
    field = str(loc[0])
    return f"{options.get(field, option_name(field))}: {message}"


# ---------------------------------------------------------------- -q/--quiet and --debug anywhere


def _set_flag(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:  # a flag not given after a subcommand keeps what was given before it
        ctx.ensure_object(dict)[param.name] = True


def global_flags(f):
    """-q/--quiet and --debug on a command or group; given anywhere, they land in ctx.obj."""
    f = click.option("--debug", is_flag=True, expose_value=False, callback=_set_flag, help="show tracebacks of internal errors")(f)
    return click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_set_flag, help="no progress output")(f)


def _flag_params() -> list[click.Option]:
    return global_flags(lambda: None).__click_params__


class FlagGroup(click.Group):
    """A group whose every command and subgroup also takes -q/--quiet and --debug."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        own = cmd._explicit if isinstance(cmd, ConfigCommand) else cmd.params
        if not any(p.name == "quiet" for p in own):
            own.extend(_flag_params())
        super().add_command(cmd, name)

    def group(self, *args, **kwargs):
        kwargs.setdefault("cls", FlagGroup)
        return super().group(*args, **kwargs)


def usage_line(e: click.ClickException) -> str:
    """click's message for bad usage as one lowercase-first line: `no such option: --bogus`."""
    message = " ".join(e.format_message().split())
    return message[:1].lower() + message[1:]


# ---------------------------------------------------------------- running a command line


def namespace(ctx: click.Context, values: Mapping, **fixed):
    """A command's parsed values, the global flags (ctx.obj) and `fixed` as one namespace, as
    argparse gave them: several values (an argument or a repeatable option) as a list."""
    from types import SimpleNamespace

    several = {p.name for p in ctx.command.params if p.multiple or p.nargs == -1}
    values = {k: list(v) if k in several and isinstance(v, tuple) else v for k, v in values.items()}
    return SimpleNamespace(**values, **fixed, **{"quiet": False, "debug": False, **(ctx.obj or {})})  # flags not given: off


def run_group(group: click.Group, argv: list[str] | None, prog: str, obj: dict) -> int:
    """Parse and run `argv` (default: sys.argv[1:]); click's exceptions are the caller's to print.
    With `_PROG_COMPLETE` set (argv None), answer the shell's completion request instead."""
    import os
    import sys

    if argv is None:
        complete_var = f"_{prog.replace('-', '_').upper()}_COMPLETE"
        instruction = os.environ.get(complete_var)
        if instruction:
            from click.shell_completion import shell_complete

            return shell_complete(group, {}, prog, complete_var, instruction)
        argv = sys.argv[1:]
    try:
        with group.make_context(prog, list(argv), obj=obj) as ctx:
            result = group.invoke(ctx)
    except getattr(click.exceptions, "NoArgsIsHelpError", ()) as e:  # a group without its command: its help
        click.echo(e.ctx.get_help(), err=True)
        return 2
    except click.exceptions.Exit as e:  # --help, --version
        return e.exit_code
    return 0 if result is None else int(result)


def parse_only(group: click.Group, argv: list[str], prog: str, obj: dict):
    """The values a command line gives (every level's options and the global flags), nothing run."""
    ctx = group.make_context(prog, list(argv), obj=obj)
    values = dict(ctx.params)
    while isinstance(ctx.command, click.Group):
        rest = [*ctx._protected_args, *ctx.args] if hasattr(ctx, "_protected_args") else [*ctx.protected_args, *ctx.args]
        name, command, rest = ctx.command.resolve_command(ctx, rest)
        ctx = command.make_context(name, rest, parent=ctx)
        values.update(ctx.params)
    return namespace(ctx, values)


def parse_count(text: str) -> int:
    """`2000000`, `2M`, `500k`, `1.5B` or `1e6` as a whole number."""
    scale = {"k": 1_000, "m": 1_000_000, "b": 1_000_000_000}.get(text[-1:].lower(), 1)
    try:
        value = float(text[:-1] if scale > 1 else text) * scale
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a count (e.g. 2000000, 2M, 500k)") from None
    if value != int(value) or value <= 0:
        raise click.BadParameter(f"{text!r} is not a positive whole count")
    return int(value)


def internal_error(prog: str, e: Exception, debug: bool, message=None) -> int:
    """What `corpus` and `train` print for an exception that is not bad input: the hint naming a
    missing optional extra (exit 2), else the traceback under --debug, else one line (exit 1).
    `message(e)`: the exception's text on one line (default: its words joined)."""
    import sys
    import traceback

    from corpus.errors import missing_extra

    hint = missing_extra(e) if isinstance(e, ModuleNotFoundError) and not debug else None
    if hint:
        print(f"{prog}: error: {hint}", file=sys.stderr)
        return 2
    if debug:
        traceback.print_exc()
        return 1
    text = message(e) if message is not None else " ".join(str(e).split())
    print(f"{prog}: internal error: {type(e).__name__}: {text} (rerun with --debug for the traceback)", file=sys.stderr)
    return 1
