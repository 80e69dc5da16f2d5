"""An HMAC key on every Pyro4 connection of hpbandster's name server, master and workers.

Without a key, anyone who reaches the name server port can register a worker or call the
dispatcher. Pyro4 4.x signs each message with the key of its ``Proxy`` or ``Daemon``
(``_pyroHmacKey``) and rejects a message signed with another key, but hpbandster creates its
proxies and daemons (and its name server) without one. ``install(key)`` makes every Pyro4 proxy and
daemon of this process use ``key`` unless given another one: the name server (``startNS``),
``locateNS``, the dispatcher, the workers and their callbacks, without touching hpbandster.

The master makes a random key (or takes ``HARNESS_PYRO_HMAC_KEY``), passes it to its local worker
processes in that environment variable and prints it for remote ones
(``python -m harness.tune.worker ... --hmac-key KEY``). HMAC authenticates; it does not encrypt.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager

ENV_VAR = "HARNESS_PYRO_HMAC_KEY"
_KEY: list[bytes | None] = [None]


def new_key() -> str:
    """A random key, URL-safe text (fits a command line and an environment variable)."""
    return secrets.token_urlsafe(32)


def key_from(value: str | None = None) -> str | None:
    """``value`` or else the environment variable; None if neither is set."""
    return value or os.environ.get(ENV_VAR) or None


def active_key() -> bytes | None:
    return _KEY[0]


def install(key: str | bytes) -> Callable[[], None]:
    """From now on, every Pyro4 proxy and daemon this process creates, or whose key is set to None,
    gets ``key`` (sticky: undoing does not unkey objects made meanwhile). Returns the undo."""
    import Pyro4.core

    if not key:
        raise ValueError("the Pyro4 HMAC key must not be empty")
    previous = _KEY[0]
    _KEY[0] = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    patched = []
    for cls in (Pyro4.core.Proxy, Pyro4.core.Daemon):
        if getattr(cls.__init__, "harness_hmac", False):
            continue  # already installed; only the key changed
        prop, init = cls.__dict__["_pyroHmacKey"], cls.__dict__["__init__"]

        def fset(self, value, _prop=prop):
            _prop.fset(self, value or _KEY[0])

        def new_init(self, *args, _init=init, **kwargs):
            _init(self, *args, **kwargs)
            if _KEY[0] is not None:
                self._pyroHmacKey = _KEY[0]

        new_init.harness_hmac = True  # type: ignore[attr-defined]
        cls._pyroHmacKey = property(prop.fget, fset, doc=prop.__doc__)
        cls.__init__ = new_init
        patched.append((cls, prop, init))

    def undo() -> None:
        _KEY[0] = previous
        for cls, prop, init in patched:
            cls._pyroHmacKey, cls.__init__ = prop, init

    return undo


@contextmanager
def master_key() -> Iterator[str]:
    """The master's key (``HARNESS_PYRO_HMAC_KEY`` or a new random one), installed and exported to
    the environment (for local worker processes) for the duration; both are restored afterwards."""
    previous = os.environ.get(ENV_VAR)
    key = key_from() or new_key()
    os.environ[ENV_VAR] = key
    undo = install(key)
    try:
        yield key
    finally:
        undo()
        if previous is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = previous
