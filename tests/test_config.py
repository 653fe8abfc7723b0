"""The example configuration files load, and every plugin option is documented."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from radicale import config as radicale_config

from dav_cms import radicale_config as dav_config

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ("dav_cms.storage", "dav_cms.auth", "dav_cms.group", "dav_cms.rights", "dav_cms.sharing")


@pytest.mark.parametrize("name", ["dav-cms.ini", "postgresql.ini"])
def test_serve_examples_load(name: str, tmp_path: Path) -> None:
    configuration, url = dav_config.build(
        str(ROOT / "config" / name), database_url=f"sqlite:///{tmp_path / 'x.sqlite3'}"
    )
    assert configuration.get("storage", "type") == "dav_cms.storage"
    assert url.startswith("sqlite")


def test_radicale_plugin_example_loads() -> None:
    configuration = radicale_config.load([(str(ROOT / "config" / "radicale-plugins.ini"), False)])
    assert configuration.get("auth", "type") == "dav_cms.auth"


@pytest.mark.parametrize("module_name", PLUGINS)
def test_every_plugin_option_is_documented(module_name: str) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    module = importlib.import_module(module_name)
    for section, options in module.PLUGIN_CONFIG_SCHEMA.items():
        assert f"[{section}]" in readme
        for option in options:
            assert f"`{option}`" in readme, f"[{section}] {option} is not in README.md"
        assert f"type = {module_name}" in readme
