"""Run Radicale's own test suite through dav_cms's application and storage.

``compat/run-radicale-suite.sh`` copies this file next to Radicale's tests, as
``radicale/tests/conftest.py`` of a scratch virtual environment. The tests
themselves are never edited: ``BaseTest.configure`` is wrapped so that, after
the suite configured Radicale's file storage, the storage is switched to
dav_cms on a database of the test's own, and the application is created again
as dav_cms serves it: ``dav_cms.web.make_application(configuration)``, every
WSGI layer of dav_cms around Radicale's application (see ``ServedApplication``
for how the suite's client is given its answers).

``DAV_CMS_SUITE_ENGINE`` picks the database:

* ``sqlite``: a fresh SQLite file in the test's temporary folder;
* ``postgresql``: a fresh database per test, made with ``CREATE DATABASE`` on
  ``DAV_CMS_SUITE_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``)
  and dropped after the test;
* ``file``: no change at all (Radicale's own file storage and its bare
  ``radicale.Application``: the baseline).

Tests that choose a storage type of their own (a custom plugin) keep it: only
Radicale's file storage (``multifilesystem``, ``multifilesystem_nolock``) is replaced.

With ``DAV_CMS_SUITE_SHARING=1`` every application configured with Radicale's
csv sharing backend gets ``[sharing] type = dav_cms.sharing`` instead, on the
test's database (with ``file``: a SQLite file of its own in the test's folder).
The suite's ``files`` sharing backend is left alone.

On ``sqlite`` and ``postgresql`` every application a test configures is
dav_cms's full one, whatever its storage type (tests with a custom storage plugin
keep the plugin, behind dav_cms's layers). With ``file`` the application stays
Radicale's own, with or without ``DAV_CMS_SUITE_SHARING``.

How the suite's client is served
--------------------------------

The suite calls ``self.application(environ, start_response)`` itself, as a
minimal WSGI server would, with two shortcuts a real server does not take: its
``start_response`` takes no ``exc_info`` argument, and it keeps only the first
chunk of the answer (``answers[0]``) and never calls the answer's ``close()``.
Radicale's application always answers in one chunk and needs no ``close()``;
dav_cms's layers stream listings in many chunks and give back their heavy-request
slot, read transaction and request context in ``close()``. ``ServedApplication``
does for the suite what dav_cms's HTTP server does: it accepts ``exc_info``, takes
every chunk, calls ``close()``, and hands the suite the whole body as one chunk.
Status, headers and body bytes are passed on unchanged.

What the harness translates, and why
------------------------------------

Two tests reach past HTTP into the file storage's folder, ``collection-root/``
of the test's ``colpath``: ``test_rights.py::test_from_file`` makes a folder
there (``os.makedirs(.../collection-root/domain.test)``) and expects a
collection ``/domain.test/``; ``test_sharing.py::...overlay_unicode`` reads a
collection's ``.Radicale.props`` to check that a share recipient's PROPPATCH
went to the share and not to the owner's collection. dav_cms keeps collections
in SQL, so while a test runs on dav_cms (its ``[storage] type`` is
``dav_cms.storage`` at that moment) exactly these two steps are done through the
storage plugin instead (see ``FolderTranslation``), and nothing else:

* ``os.makedirs(p)``, called from a test file, for a folder ``p`` under the
  test's own ``collection-root/``: the folder is made as usual, then every
  collection along ``p`` that is not in the database is created there as a plain
  collection (``acquire_lock("w")`` + ``create_collection``), as the file
  storage would see one in each folder. An item in the way, or the last
  collection already there without ``exist_ok``, is a ``FileExistsError``.
  Folders whose names the file storage would not list as collections (a leading
  dot, ...) are only made on disk.
* ``open(p)`` for reading, called from a test file, of ``<collection>/.Radicale.props``
  under the test's own ``collection-root/``: the text is the collection's
  properties as stored in the database now (``discover`` + ``get_meta`` of a
  storage instance made for that read from the test's configuration), written as
  Radicale's file storage writes that file (``json.dump(props, sort_keys=True)``);
  no collection there is a ``FileNotFoundError``, an item a ``NotADirectoryError``.
  (The file storage writes no such file for a collection that never had
  properties; here it reads ``{}``.)

Why this cannot hide a dav_cms bug: nothing is remembered between calls — the
properties are read from the database at the moment of the ``open``, through
the same plugin code that serves requests, so a PROPPATCH stored in the wrong
place is read back as stored. The folder step only ever adds a plain collection
where the test itself made a folder, once, at that call (not before each
request, so a collection deleted later is not brought back). Calls made by
Radicale, dav_cms or the standard library (``os.makedirs`` recursing into its
own parents, for one) and paths outside the current test's ``collection-root/``
reach the real functions untouched, and both are restored after each test.

Refusals dav_cms makes on purpose
---------------------------------

Two kinds of request of the suite meet a refusal of dav_cms's layers that
Radicale does not make. While the full application runs (``sqlite``,
``postgresql``), each is sent as the equivalent request dav_cms takes, and
nothing else is changed; the test then checks Radicale's answer to that request:

* test_sharing.py's ``_sharing_api_form`` POSTs the sharing API form-encoded.
  The cross-site layer takes a POST to the sharing API only as
  ``application/json`` (403 otherwise: an HTML form of a hostile page can send a
  form). Radicale takes both, and reads the form into the same fields it reads
  from JSON; the form is sent as the JSON object of those fields, read as
  Radicale reads the form (``form_as_json``), with the test's ``Accept`` (which
  picks the answer's format) unchanged. A form Radicale itself refuses (a
  malformed ``Properties`` entry, an ``Enabled`` that is no boolean) is sent as
  it is.
* test_sharing.py POSTs to the sharing API with no body and no
  ``Content-Type``, to see 404 (API off), 401 (no login) or 400 (no data): the
  cross-site layer answers 403 before any of these. Such a POST is sent with
  ``Content-Type: application/json`` and still no body, to which Radicale gives
  the same three answers.

Each is logged (``suite: ...``, logger ``dav_cms.suite``). Every other request
reaches the application as the test wrote it, and every answer reaches the test
as the application gave it (dav_cms's security headers included), so any other
refusal or difference shows as a failure.
"""

from __future__ import annotations

import builtins
import configparser
import errno
import inspect
import io
import itertools
import json
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs

import pytest
from radicale import app as radicale_app
from radicale import pathutils
from radicale import storage as radicale_storage
from radicale.tests import BaseTest

from dav_cms.web import make_application
from dav_cms.web.types import Environ, StartResponse, WSGIApp

ENGINE_VARIABLE = "DAV_CMS_SUITE_ENGINE"
PG_ADMIN_VARIABLE = "DAV_CMS_SUITE_PG_URL"
DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ENGINES = ("sqlite", "postgresql", "file")
# The suite's "default storage": replaced by dav_cms. Custom plugins are kept.
FILE_STORAGE_TYPES = frozenset({"multifilesystem", "multifilesystem_nolock"})
SQLITE_FILE_NAME = "dav_cms-suite.sqlite3"
SHARING_VARIABLE = "DAV_CMS_SUITE_SHARING"
# The sharing backend replaced by dav_cms.sharing when SHARING_VARIABLE is set.
REPLACED_SHARING_TYPE = "csv"
DATABASE_ATTRIBUTE = "_dav_cms_suite_database"
DAV_CMS_STORAGE_TYPE = "dav_cms.storage"
# The file storage's folder of collections, in a test's colpath, and its properties file.
COLLECTION_ROOT = "collection-root"
PROPS_FILE_NAME = ".Radicale.props"
# Only calls made from the suite's test files are translated (this file's folder).
TESTS_FOLDER = Path(__file__).absolute().parent

logger = logging.getLogger("dav_cms.suite")

_database_numbers = itertools.count(1)
_originals: dict[str, Callable[..., Any]] = {}
# PostgreSQL databases made and not dropped yet (a failed setup skips the teardown).
_pg_databases: set[str] = set()


def suite_sharing() -> bool:
    """True when ``DAV_CMS_SUITE_SHARING`` asks for dav_cms.sharing in place of csv."""
    return os.environ.get(SHARING_VARIABLE, "").strip().lower() in ("1", "true", "yes")


def suite_engine() -> str:
    """The engine chosen by ``DAV_CMS_SUITE_ENGINE`` (default: sqlite)."""
    engine = os.environ.get(ENGINE_VARIABLE, "sqlite").strip().lower()
    if engine not in ENGINES:
        msg = f"{ENGINE_VARIABLE}={engine!r}: expected one of {', '.join(ENGINES)}"
        raise pytest.UsageError(msg)
    return engine


# -- databases -----------------------------------------------------------------


def _pg_admin_url() -> str:
    return os.environ.get(PG_ADMIN_VARIABLE, DEFAULT_PG_ADMIN_URL)


def _pg_admin(statement: str) -> None:
    """Run ``statement`` outside a transaction on the administration database."""
    import psycopg  # noqa: PLC0415 - only the PostgreSQL runs need it

    with psycopg.connect(_pg_admin_url(), autocommit=True) as connection:
        connection.execute(statement)  # type: ignore[arg-type]


def _pg_database_url(name: str) -> str:
    from sqlalchemy.engine import make_url  # noqa: PLC0415

    return make_url(_pg_admin_url()).set(database=name).render_as_string(hide_password=False)


def create_database(test: BaseTest) -> str:
    """A fresh, empty database for ``test``; its URL."""
    if suite_engine() == "sqlite":
        return "sqlite:///" + os.path.join(test.colpath, SQLITE_FILE_NAME)  # noqa: PTH118
    name = f"dav_cms_suite_{os.getpid()}_{next(_database_numbers)}"
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _pg_admin(f'CREATE DATABASE "{name}"')
    _pg_databases.add(name)
    return _pg_database_url(name)


def drop_database(url: str) -> None:
    """Close dav_cms's connections to ``url`` and remove the database."""
    from dav_cms.db.session import dispose_engines  # noqa: PLC0415

    dispose_engines()
    if url.startswith("postgresql"):
        from sqlalchemy.engine import make_url  # noqa: PLC0415

        _drop_pg_database(str(make_url(url).database))


def _drop_pg_database(name: str) -> None:
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _pg_databases.discard(name)


# -- the file storage's folder, for a test on dav_cms ---------------------------------


def _called_from_test_file(frame: Any) -> bool:  # noqa: ANN401 - a frame or None
    """True when ``frame`` runs code of one of the suite's test files."""
    if frame is None:
        return False
    filename = Path(frame.f_code.co_filename)
    return filename.parent == TESTS_FOLDER and filename.name.startswith("test_")


def _normalised(path: str) -> Path:
    return Path(os.path.normpath(Path(path).absolute()))


class FolderTranslation:
    """``os.makedirs`` and ``open`` of the test's ``collection-root/``, on dav_cms.

    Installed for one test (``setup_method`` to ``teardown_method``); see the
    module's documentation for what is translated and why.
    """

    def __init__(self) -> None:
        self.test: BaseTest | None = None
        self._real_makedirs: Callable[..., None] = os.makedirs
        self._real_open: Callable[..., Any] = builtins.open

    def install(self, test: BaseTest) -> None:
        """Translate the file-storage steps of ``test`` from now on."""
        self.remove()
        self.test = test
        self._real_makedirs = os.makedirs
        self._real_open = builtins.open
        os.makedirs = self.makedirs
        builtins.open = self.open

    def remove(self) -> None:
        """Put ``os.makedirs`` and ``open`` back."""
        if self.test is None:
            return
        os.makedirs = self._real_makedirs
        builtins.open = self._real_open
        self.test = None

    # -- which calls --------------------------------------------------------------

    def _storage(self) -> radicale_storage.BaseStorage | None:
        """A dav_cms storage on the test's database, if the test runs on dav_cms now."""
        test = self.test
        if test is None or test.configuration.get("storage", "type") != DAV_CMS_STORAGE_TYPE:
            return None
        return radicale_storage.load(test.configuration)

    def _collection_path(self, folder: object) -> str | None:
        """The collection path of ``folder`` if it is in the test's collection-root."""
        assert self.test is not None
        if not isinstance(folder, str | os.PathLike):
            return None
        name = os.fspath(folder)
        if not isinstance(name, str):
            return None
        root = _normalised(self.test.colpath) / COLLECTION_ROOT
        path = _normalised(name)
        if path != root and root not in path.parents:
            return None
        parts = path.relative_to(root).parts
        if not all(pathutils.is_safe_filesystem_path_component(part) for part in parts):
            return None
        return "/".join(parts)

    # -- the wrapped functions -----------------------------------------------------

    def makedirs(self, name: Any, mode: int = 0o777, exist_ok: bool = False) -> None:  # noqa: ANN401
        """``os.makedirs``; then the collections along a collection-root folder."""
        caller = inspect.currentframe()
        caller = caller.f_back if caller is not None else None
        path = None
        if self.test is not None and _called_from_test_file(caller):
            path = self._collection_path(name)
        self._real_makedirs(name, mode, exist_ok)
        if not path:  # not translated, or collection-root itself (the root always exists)
            return
        storage = self._storage()
        if storage is None:
            return
        parts = path.split("/")
        with storage.acquire_lock("w"):
            for depth in range(1, len(parts) + 1):
                href = pathutils.unstrip_path("/".join(parts[:depth]), True)
                found = list(storage.discover(href))
                if not found:
                    storage.create_collection(href)
                    logger.info(
                        "suite: folder %s/%s made: collection %r created",
                        COLLECTION_ROOT,
                        "/".join(parts[:depth]),
                        href,
                    )
                elif not isinstance(found[0], radicale_storage.BaseCollection):
                    raise FileExistsError(errno.EEXIST, f"an item is at {href}", os.fspath(name))
                elif depth == len(parts) and not exist_ok:
                    raise FileExistsError(
                        errno.EEXIST, f"collection {href} exists", os.fspath(name)
                    )

    def open(self, file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> IO[Any]:  # noqa: ANN401
        """``open``; a collection's ``.Radicale.props`` read from the database."""
        caller = inspect.currentframe()
        caller = caller.f_back if caller is not None else None
        if (
            self.test is not None
            and isinstance(mode, str)
            and not set(mode) & set("wax+")
            and isinstance(file, str | os.PathLike)
            and isinstance(os.fspath(file), str)
            and Path(os.fspath(file)).name == PROPS_FILE_NAME
            and _called_from_test_file(caller)
        ):
            path = self._collection_path(str(Path(os.fspath(file)).parent))
            storage = self._storage() if path is not None else None
            if path is not None and storage is not None:
                return self._read_props(storage, path, os.fspath(file), mode)
        return self._real_open(file, mode, *args, **kwargs)  # type: ignore[no-any-return]

    @staticmethod
    def _read_props(
        storage: radicale_storage.BaseStorage, path: str, file: str, mode: str
    ) -> IO[Any]:
        """The collection's properties in the database, as the file storage writes them."""
        href = pathutils.unstrip_path(path, True)
        with storage.acquire_lock("r"):
            found = list(storage.discover(href))
            if found and isinstance(found[0], radicale_storage.BaseCollection):
                props: dict[str, str] | None = dict(found[0].get_meta())
            else:
                props = None
        if props is None:
            code = errno.ENOTDIR if found else errno.ENOENT
            error = NotADirectoryError if found else FileNotFoundError
            raise error(code, os.strerror(code), file)
        logger.info("suite: %s of collection %r read from the database", PROPS_FILE_NAME, href)
        text = json.dumps(props, sort_keys=True)
        return io.BytesIO(text.encode()) if "b" in mode else io.StringIO(text)


_folder_translation = FolderTranslation()


# -- the suite's form-encoded sharing API requests, as JSON ---------------------------

FORM_TYPE = "application/x-www-form-urlencoded"
JSON_TYPE = "application/json"
# test_sharing.py's helpers: _sharing_api_form builds the form, _sharing_api sends it.
FORM_HELPER = "_sharing_api_form"
SENDING_HELPER = "_sharing_api"
SHARING_TEST_FILE = "test_sharing.py"
SHARING_SEGMENT = ".sharing"
# The form fields Radicale reads as booleans, and the one it reads as NAME=VALUE pairs.
BOOLEAN_FIELDS = frozenset({"Enabled", "Hidden"})
PROPERTIES_FIELD = "Properties"
PROPERTY_ENTRY = re.compile(r"^([^=]+)=([^=]+)$")
QUOTES = "\"'"


def _called_from_form_helper(frame: Any) -> bool:  # noqa: ANN401 - a frame or None
    """True when ``frame`` is test_sharing.py's ``_sharing_api`` run by ``_sharing_api_form``."""
    if frame is None or frame.f_back is None:
        return False
    sender, builder = frame.f_code, frame.f_back.f_code
    return all(
        Path(code.co_filename) == TESTS_FOLDER / SHARING_TEST_FILE and code.co_name == name
        for code, name in ((sender, SENDING_HELPER), (builder, FORM_HELPER))
    )


def form_as_json(body: str) -> str | None:
    """The JSON request that carries the same fields as the form ``body``.

    Field for field as Radicale reads the form: the first value of each field,
    ``Enabled``/``Hidden`` as booleans, ``Properties`` entries ``NAME=VALUE``
    (quotes stripped, empty entries skipped) as an object. None when Radicale
    would refuse the form itself (a malformed property entry, a field that is no
    boolean): such a body is sent unchanged.
    """
    data: dict[str, Any] = {}
    for name, values in parse_qs(body, keep_blank_values=True).items():
        if name == PROPERTIES_FIELD:
            properties: dict[str, str] = {}
            for entry in values:
                if not entry:
                    continue
                match = PROPERTY_ENTRY.match(entry)
                if match is None:
                    return None
                properties[match[1].strip(QUOTES)] = match[2].strip(QUOTES)
            data[name] = properties
        elif name in BOOLEAN_FIELDS:
            state = configparser.RawConfigParser.BOOLEAN_STATES.get(values[0].lower())
            if state is None:
                return None
            data[name] = state
        else:
            data[name] = values[0]
    return json.dumps(data)


def _bodiless_sharing_post(frame: Any, method: str, path: str, kwargs: dict[str, Any]) -> bool:  # noqa: ANN401
    """True for a POST to the sharing API, without body or type, straight from test_sharing.py."""
    return (
        frame is not None
        and Path(frame.f_code.co_filename) == TESTS_FOLDER / SHARING_TEST_FILE
        and method.upper() == "POST"
        and SHARING_SEGMENT in path.split("/")
        and kwargs.get("data") is None
        and kwargs.get("content_type") is None
    )


def request(self: BaseTest, method: str, path: str, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
    """The suite's ``request``; test_sharing.py's sharing API POSTs said to be JSON."""
    caller = inspect.currentframe()
    caller = caller.f_back if caller is not None else None
    data = kwargs.get("data")
    if args:
        pass  # the suite passes data and content type by name; positional calls go as they are
    elif (
        isinstance(data, str)
        and kwargs.get("content_type") == FORM_TYPE
        and _called_from_form_helper(caller)
    ):
        translated = form_as_json(data)
        if translated is not None:
            logger.info("suite: %s %s: form body sent as JSON %s", method, path, translated)
            kwargs = {**kwargs, "data": translated, "content_type": JSON_TYPE}
    elif _bodiless_sharing_post(caller, method, path, kwargs):
        logger.info("suite: %s %s without body: sent with Content-Type %s", method, path, JSON_TYPE)
        kwargs = {**kwargs, "content_type": JSON_TYPE}
    return _originals["request"](self, method, path, *args, **kwargs)


# -- the suite's client, served as dav_cms's HTTP server serves ------------------------


class ServedApplication:
    """dav_cms's application as its HTTP server runs it, for the suite's own client.

    The answer is taken whole and closed, then handed over as one chunk; see the
    module's documentation for why.
    """

    def __init__(self, application: WSGIApp) -> None:
        self.application = application

    def __call__(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        """Run one request to its end; the whole body as a single chunk."""
        started = False

        def server_start_response(
            status: str,
            headers: list[tuple[str, str]],
            exc_info: Any = None,  # noqa: ANN401 - sys.exc_info() or None
        ) -> Any:  # noqa: ANN401 - the suite's write callable (None)
            nonlocal started
            if exc_info is not None and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started = True
            return start_response(status, headers)

        answer = self.application(environ, server_start_response)
        try:
            body = b"".join(answer)
        finally:
            close = getattr(answer, "close", None)
            if close is not None:
                close()
        return [body] if body else []


# -- the wrapped BaseTest ----------------------------------------------------------


def _uses_file_storage(test: BaseTest) -> bool:
    storage_type = test.configuration.get("storage", "type")
    return isinstance(storage_type, str) and storage_type in FILE_STORAGE_TYPES


def _uses_csv_sharing(test: BaseTest) -> bool:
    return bool(test.configuration.get("sharing", "type") == REPLACED_SHARING_TYPE)


def _test_database(test: BaseTest) -> str:
    url = getattr(test, DATABASE_ATTRIBUTE, None)
    if url is None:
        if suite_engine() == "file":
            url = "sqlite:///" + os.path.join(test.colpath, SQLITE_FILE_NAME)  # noqa: PTH118
        else:
            url = create_database(test)
        setattr(test, DATABASE_ATTRIBUTE, url)
    return str(url)


def configure(self: BaseTest, config_: Any) -> None:  # noqa: ANN401
    """The suite's ``configure``, then dav_cms's plugins and dav_cms's application.

    On the ``file`` baseline only the sharing backend may change, and the
    application stays Radicale's own.
    """
    _originals["configure"](self, config_)
    full_application = suite_engine() != "file"
    updates: dict[str, dict[str, str]] = {}
    if full_application and _uses_file_storage(self):
        updates["storage"] = {"type": DAV_CMS_STORAGE_TYPE, "database_url": _test_database(self)}
    if suite_sharing() and _uses_csv_sharing(self):
        updates["sharing"] = {"type": "dav_cms.sharing", "database_url": _test_database(self)}
    if updates:
        self.configuration.update(updates, "dav_cms suite", privileged=True)
    if full_application:
        self.application = ServedApplication(make_application(self.configuration))
    elif updates:
        # What BaseTest.configure does after its update.
        self.application = radicale_app.Application(self.configuration)


def setup_method(self: BaseTest) -> None:
    """The suite's setup; then, on dav_cms, the translation of its folder."""
    _originals["setup_method"](self)
    if suite_engine() != "file":
        _folder_translation.install(self)


def teardown_method(self: BaseTest) -> None:
    """Drop the test's database (closing its connections first), then the suite's teardown."""
    _folder_translation.remove()
    url = getattr(self, DATABASE_ATTRIBUTE, None)
    try:
        if url is not None:
            drop_database(url)
    finally:
        _originals["teardown_method"](self)


def pytest_configure(config: pytest.Config) -> None:
    """Wrap BaseTest unless the baseline (Radicale's file storage) was asked for."""
    engine = suite_engine()
    config.stash[_ENGINE_KEY] = engine
    if (engine == "file" and not suite_sharing()) or _originals:
        return
    _originals["configure"] = BaseTest.configure
    _originals["setup_method"] = BaseTest.setup_method
    _originals["teardown_method"] = BaseTest.teardown_method
    if engine != "file":
        _originals["request"] = BaseTest.request
        BaseTest.request = request  # type: ignore[method-assign]
    BaseTest.configure = configure  # type: ignore[method-assign]
    BaseTest.setup_method = setup_method  # type: ignore[method-assign]
    BaseTest.teardown_method = teardown_method  # type: ignore[method-assign]


def pytest_unconfigure(config: pytest.Config) -> None:
    """Put BaseTest back as it was; drop the databases no teardown dropped."""
    _folder_translation.remove()
    for name, original in _originals.items():
        setattr(BaseTest, name, original)
    _originals.clear()
    if _pg_databases:
        from dav_cms.db.session import dispose_engines  # noqa: PLC0415

        dispose_engines()
        for name in sorted(_pg_databases):
            _drop_pg_database(name)


def pytest_report_header(config: pytest.Config) -> str:
    """Say which storage the run is testing."""
    engine = config.stash.get(_ENGINE_KEY, "?")
    sharing = "dav_cms.sharing in place of csv" if suite_sharing() else "Radicale's backends"
    if engine == "file":
        return (
            "radicale suite storage: Radicale's multifilesystem (baseline), "
            f"radicale.Application; sharing: {sharing}"
        )
    return (
        f"radicale suite storage: dav_cms.storage on {engine}, "
        f"dav_cms.web.make_application; sharing: {sharing}"
    )


_ENGINE_KEY = pytest.StashKey[str]()
