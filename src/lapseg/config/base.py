"""The base of every configuration section: a frozen pydantic model with one-line errors.

A section declares its keys once, as typed attributes with a docstring each (the docstring is the
key's meaning in the generated reference, ``docs/configuration.md``); ranges are ``Field``
constraints and vocabularies are ``Literal`` types. Unknown keys and wrong values raise
:class:`~lapseg.errors.LapsegInputError` naming the key path (``train.lr=-1: input should be
greater than 0``), never a traceback.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Iterator
from importlib import resources
from typing import Annotated, Any, ClassVar, Self

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, ValidationError
from pydantic_core import PydanticCustomError

from lapseg.errors import LapsegInputError

__all__ = [
    "Bool",
    "Fraction",
    "Int",
    "NonNegative",
    "Positive",
    "Probability",
    "Section",
    "Size",
    "check_preset",
    "describe_validation_error",
    "key_error",
    "load_presets",
]

Int = Annotated[int, Strict()]
"""An integer (not a bool, a float or a string)."""
Bool = Annotated[bool, Strict()]
"""true or false (not 0/1 or a string)."""
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
"""A probability in [0, 1]."""
Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
"""A fraction in [0, 1)."""
Positive = Annotated[float, Field(gt=0.0)]
"""A number > 0."""
NonNegative = Annotated[float, Field(ge=0.0)]
"""A number >= 0."""


def _at_least_8(size: tuple[int, int]) -> tuple[int, int]:
    if min(size) < 8:
        raise ValueError("must be two sizes >= 8")
    return size


Size = Annotated[tuple[int, int], AfterValidator(_at_least_8)]
"""An image size (Y, X), both >= 8 pixels."""


@functools.cache
def load_presets(name: str) -> dict[str, dict[str, Any]]:
    """The preset file ``presets/<name>.yaml`` shipped with :mod:`lapseg.config` (plain YAML)."""
    text = resources.files("lapseg.config").joinpath(f"presets/{name}.yaml").read_text("utf-8")
    return dict(yaml.safe_load(text))


def check_preset(name: str, kind: str) -> str:
    """``name`` if it is a preset of ``presets/<kind>.yaml``; else a message listing them."""
    if name not in load_presets(kind):
        raise ValueError(f"unknown preset; valid presets: {', '.join(load_presets(kind))}")
    return name


def key_error(key: str, message: str) -> PydanticCustomError:
    """The error a section's cross-key check raises about its key ``key`` (e.g.
    ``"curriculum[0]"``): the message then names the key's whole path."""
    return PydanticCustomError("lapseg_key", "{message}", {"key": key, "message": message})


def _location(prefix: str, loc: tuple[Any, ...]) -> str:
    parts = [prefix] if prefix else []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        elif not str(item).startswith("function-"):
            parts.append(str(item))
    return ".".join(parts)


def _valid_keys(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> list[str]:
    """The keys of the (sub-)section that holds the key at ``loc``."""
    for item in loc[:-1]:
        if model is None or isinstance(item, int) or item not in model.model_fields:
            continue
        annotation = model.model_fields[item].annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        model = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
    return list(model.model_fields) if model is not None else []


def describe_validation_error(
    error: ValidationError, *, prefix: str = "", model: type[BaseModel] | None = None
) -> str:
    """One line for a pydantic error: the first problem with its key path and value."""
    first = error.errors(include_url=False)[0]
    loc = tuple(first.get("loc", ()))
    where = _location(prefix, loc)
    message = str(first.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    kind = first.get("type", "")
    if kind == "lapseg_key":
        key = str(first["ctx"]["key"])
        where = f"{where}{'' if key.startswith('[') or not where else '.'}{key}"
        return f"{where}: {first['ctx']['message']}"
    if kind == "extra_forbidden":
        valid = _valid_keys(model, loc)
        head = where.rpartition(".")[0]
        listing = f"; valid keys in {head!r}: {', '.join(valid)}" if valid and head else ""
        return f"unknown key {where}{listing}"
    if kind in ("model_type", "dict_type") and not isinstance(first.get("input"), dict):
        return f"{where}={first.get('input')!r} must be a section (a mapping of keys)"
    if kind == "missing" and loc and isinstance(loc[-1], int):
        return f"{where.rpartition('[')[0]} has too few entries (entry [{loc[-1]}] is missing)"
    if message and message[0].isupper() and not message[1:2].isupper():
        message = message[0].lower() + message[1:]
    value = first.get("input")
    shown = where if kind == "missing" or isinstance(value, dict) else f"{where}={value!r}"
    more = len(error.errors()) - 1
    text = f"{shown}: {message}" if shown else message
    return text + (f" (and {more} more problem(s))" if more else "")


_DEPTH = contextvars.ContextVar("lapseg_config_validation_depth", default=0)


@contextlib.contextmanager
def _validation(prefix: str, model: type[BaseModel]) -> Iterator[None]:
    """Turn a pydantic error into a one-line LapsegInputError at the outermost validation only
    (nested sections re-raise it, so the error keeps its whole key path)."""
    token = _DEPTH.set(_DEPTH.get() + 1)
    try:
        yield
    except ValidationError as error:
        if _DEPTH.get() > 1:
            raise
        raise LapsegInputError(
            describe_validation_error(error, prefix=prefix, model=model)
        ) from None
    finally:
        _DEPTH.reset(token)


class Section(BaseModel):
    """A configuration section: frozen, unknown keys rejected, attribute docstrings kept.

    ``SECTION`` names the section in error messages (``"train"``); nested sections are named
    by their key path.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        use_attribute_docstrings=True,
        validate_default=True,
        protected_namespaces=(),
    )
    SECTION: ClassVar[str] = ""

    def __init__(self, /, **values: Any) -> None:
        with _validation(self.SECTION, type(self)):
            super().__init__(**values)

    @classmethod
    def from_dict(cls, values: Any, *, where: str | None = None) -> Self:
        """Validate a mapping (e.g. a YAML section) into this section."""
        prefix = cls.SECTION if where is None else where
        if not isinstance(values, dict):
            raise LapsegInputError(
                f"{prefix}={values!r} must be a section (a mapping of keys)"
                if prefix
                else "the configuration must be a mapping of sections"
            )
        with _validation(prefix, cls):
            return cls.model_validate(values)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists, not tuples): YAML/JSON- and ``weights_only``-safe."""
        return self.model_dump(mode="json")

    def replace(self, **changes: Any) -> Self:
        """A validated copy with some keys changed (nested sections given as sections or dicts)."""
        values = self.model_dump()
        for key, value in changes.items():
            values[key] = value.model_dump() if isinstance(value, BaseModel) else value
        return type(self).from_dict(values)
