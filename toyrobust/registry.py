"""One registry helper behind every name table of the package (distributions, attacks, closed forms, defenses,
settings, sweep tasks, numeric functions).

A :class:`Registry` is a dict from names to registered objects that refuses a second, different object under a
taken name (unless asked to replace it), resolves names case-insensitively through aliases, and words its
errors the same way everywhere: what kind of thing was asked for, the value received and every allowed name.
It is the lowest layer of the package beside :mod:`toyrobust.constraints` and imports nothing of toyrobust.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


def _same(a: Any, b: Any) -> bool:
    """Whether two registrations are the same object (or the same class or function defined again when its
    module is re-imported, e.g. by a test reloading it)."""
    if a is b:
        return True
    qa, qb = getattr(a, "__qualname__", None), getattr(b, "__qualname__", None)
    return qa is not None and qa == qb and getattr(a, "__module__", None) == getattr(b, "__module__", None)


class Registry(dict, Generic[T]):
    """Names -> objects of one kind, with aliases, refusal of duplicate names and uniform error messages.

    Args:
        kind: what the names name, for messages ("attack", "distribution", "sweep task", ...).
        normalize: how a name is put in canonical form before lookup (default: stripped and lower-cased).
    """

    def __init__(self, kind: str, *, normalize: Callable[[str], str] | None = None) -> None:
        super().__init__()
        self.kind = kind
        self._normalize = normalize or (lambda s: s.strip().lower())
        self._aliases: dict[str, str] = {}

    # ------------------------------------------------------------------------------------------------ writing

    def register(self, name: str, obj: T, *, aliases: Iterable[str] = (), replace: bool = False) -> T:
        """Add ``obj`` under ``name`` (and ``aliases``); ValueError when a name is taken by another object.

        Returns ``obj``, so ``register`` can end a decorator.
        """
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        key = self._normalize(name)
        for alias in (key, *(self._normalize(a) for a in aliases)):
            owner = self._aliases.get(alias)
            if owner is not None and not replace and not _same(dict.get(self, owner), obj):
                raise ValueError(f"the {self.kind} name {alias!r} is already registered "
                                 f"(by {_describe(dict.get(self, owner))}); pass replace=True to replace it")
        dict.__setitem__(self, key, obj)
        self._aliases[key] = key
        for alias in aliases:
            self._aliases[self._normalize(alias)] = key
        return obj

    def __setitem__(self, name: str, obj: T) -> None:  # plain assignment follows the same rule
        self.register(name, obj)

    def __delitem__(self, name: str) -> None:
        key = self.canonical(name)
        if key is None:
            raise KeyError(name)
        dict.__delitem__(self, key)
        self._aliases = {alias: k for alias, k in self._aliases.items() if k != key}

    _MISSING = object()

    def pop(self, name: str, default: Any = _MISSING) -> Any:
        """Remove ``name`` (and its aliases) and return its object."""
        key = self.canonical(name)
        if key is None:
            if default is Registry._MISSING:
                raise KeyError(name)
            return default
        obj = dict.__getitem__(self, key)
        del self[key]
        return obj

    def clear(self) -> None:
        dict.clear(self)
        self._aliases.clear()

    def update(self, *args: Any, **kw: Any) -> None:  # every entry through register: duplicates refused
        for name, obj in dict(*args, **kw).items():
            self.register(name, obj)

    def decorator(self, name: str, **kw: Any) -> Callable[[T], T]:
        """``@registry.decorator("name")`` registers the decorated object under ``name``."""
        return lambda obj: self.register(name, obj, **kw)

    # ------------------------------------------------------------------------------------------------ reading

    def canonical(self, name: str) -> str | None:
        """The registered name ``name`` (or its alias) stands for, or None."""
        if not isinstance(name, str):
            return None
        return self._aliases.get(self._normalize(name))

    def lookup(self, name: Any, *, param: str | None = None) -> T:
        """The object registered as ``name``; TypeError for a non-string, ValueError naming every allowed name."""
        param = param or self.kind
        if not isinstance(name, str):
            raise TypeError(f"{param} must be a {self.kind} name (one of {self.listing()}), "
                            f"got {type(name).__name__} {name!r}")
        key = self.canonical(name)
        if key is None:
            raise ValueError(f"{param}={name!r} is not a known {self.kind}; allowed: {self.listing()}")
        return dict.__getitem__(self, key)

    def names(self, *, aliases: bool = False) -> list[str]:
        """Registered names in registration order (with ``aliases``: every accepted spelling, sorted)."""
        return sorted(self._aliases) if aliases else list(self)

    def listing(self, *, aliases: bool = False) -> str:
        """The allowed names as one comma-separated string, for ``--help`` and error messages."""
        return ", ".join(self.names(aliases=aliases)) or "(none registered)"

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.canonical(name) is not None

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {self.listing()})"


def _describe(obj: Any) -> str:
    return getattr(obj, "__qualname__", None) or getattr(obj, "name", None) or type(obj).__name__
