"""Secret references: profiles never hold secrets, only where to find them.

In a profile a secret is ``{"$env" = "NAME"}`` (an environment variable) or
``{"$file" = "path"}`` (a file, relative to the profile's folder). The value is read
when used, never at load time, and a reference's ``repr`` never shows the value.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs

from .errors import IbbError


class SecretUnavailable(IbbError):
    """A referenced secret cannot be read (variable unset, file missing)."""


@attrs.frozen
class SecretRef:
    kind: str
    """``env`` or ``file``."""
    name: str
    base_dir: Path = Path(".")

    def __str__(self) -> str:
        return f"${self.kind}:{self.name}"

    def read(self) -> bytes:
        """The secret's value. Raises :class:`SecretUnavailable` naming the reference (not the value)."""
        if self.kind == "env":
            value = os.environ.get(self.name)
            if value is None:
                raise SecretUnavailable(f"secret {self}: environment variable {self.name} is not set")
            return value.encode()
        path = self.base_dir / self.name
        try:
            return path.read_bytes()
        except OSError as exc:
            raise SecretUnavailable(f"secret {self}: cannot read {path} ({exc.strerror})") from None

    def read_text(self) -> str:
        return self.read().decode().strip()


def structure_secret(value: Any, base_dir: Path) -> SecretRef:
    """Build a reference from profile data; plain strings are refused so no secret is inlined."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, name),) = value.items()
        if key in ("$env", "$file") and isinstance(name, str) and name:
            return SecretRef(key[1:], name, base_dir)
    raise ValueError('must be a reference {"$env" = "NAME"} or {"$file" = "PATH"}, never the secret itself')


def check_readable(obj: Any) -> None:
    """Read every secret reference inside ``obj`` (attrs instances, dicts, tuples) once, so that a
    missing variable or file is reported at start-up rather than on the first message."""
    if isinstance(obj, SecretRef):
        obj.read()
    elif attrs.has(type(obj)):
        for f in attrs.fields(type(obj)):
            check_readable(getattr(obj, f.name))
    elif isinstance(obj, dict):
        for value in obj.values():
            check_readable(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            check_readable(value)
