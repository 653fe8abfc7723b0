"""Database errors become Radicale's errors (4xx), and the request's writes roll back."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, Protocol, TypeVar, cast

from sqlalchemy.exc import DataError, IntegrityError

if TYPE_CHECKING:
    from dav_cms.db.transaction import Transactions

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


class StorageError(ValueError):
    """A write the database refused; Radicale answers it with a 4xx."""


class _HasTransactions(Protocol):
    """The storage, or what a collection keeps of it in ``_storage``."""

    @property
    def transactions(self) -> Transactions:
        """The storage's transactions."""


def _transactions(owner: object) -> Transactions:
    """The transactions of ``owner``: a storage, or a collection of one."""
    storage = cast("_HasTransactions", getattr(owner, "_storage", owner))
    return storage.transactions


def translate_errors(method: Callable[P, R]) -> Callable[P, R]:
    """Wrap a storage write: roll the request back on any error; map SQL errors.

    Radicale catches ``ValueError`` inside its lock and answers 400/409, so an
    error must also mark the unit of work: nothing the request did is committed.
    """

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        transactions = _transactions(args[0])
        try:
            return method(*args, **kwargs)
        except IntegrityError as exc:
            transactions.mark_failed()
            logger.info("storage write refused by a database constraint: %s", exc.orig)
            msg = f"conflicting write (a UID or name already exists): {exc.orig}"
            raise StorageError(msg) from exc
        except DataError as exc:
            transactions.mark_failed()
            logger.info("storage write refused as invalid data: %s", exc.orig)
            msg = f"invalid data: {exc.orig}"
            raise StorageError(msg) from exc
        except BaseException:
            transactions.mark_failed()
            raise

    return wrapper
