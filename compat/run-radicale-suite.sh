#!/usr/bin/env bash
# Run Radicale's own tests (from a Radicale checkout) through dav_cms: every
# test's application is dav_cms.web.make_application (dav_cms's WSGI layers
# around Radicale's), its storage dav_cms.storage.
#
#   compat/run-radicale-suite.sh RADICALE_CHECKOUT ENGINE [--dav-cms-sharing] [PYTEST ARGS...]
#
# ENGINE: sqlite | postgresql (dav_cms's application and dav_cms.storage on
#         that database; one fresh database per test) | file (Radicale's own
#         application and file storage: the baseline).
# --dav-cms-sharing: every test that configures Radicale's csv sharing backend
#         gets [sharing] type = dav_cms.sharing on the test's database instead
#         (also: DAV_CMS_SUITE_SHARING=1 in the environment).
#
# The tests run against the Radicale release installed from the package
# registry (dav_cms's pin, or RADICALE_VERSION), in a scratch virtual
# environment that has dav_cms installed in editable mode; only the test files
# come from the checkout. They are copied into that environment's
# radicale/tests/ package (the wheel ships only radicale/tests/custom/, which
# is kept: its plugins match the installed release), together with
# compat/radicale_suite/conftest.py, which switches the application and the
# storage to dav_cms's.
#
# Environment:
#   SUITE_VENV         scratch virtual environment (default: $TMPDIR/dav-cms-radicale-suite-venv)
#   RADICALE_VERSION   Radicale release to test against (default: dav_cms's pin)
#   SUITE_TESTS        test files of the checkout (default: the four below)
#   SUITE_PYTHON       interpreter for a new SUITE_VENV (default: python3)
#   DAV_CMS_SUITE_PG_URL  administration database for ENGINE=postgresql
#                      (default: postgresql://postgres@127.0.0.1:5432/postgres)
#   SUITE_SKIP_INSTALL=1  reuse SUITE_VENV as it is (no pip run)
set -euo pipefail

usage() {
    echo "usage: $0 RADICALE_CHECKOUT sqlite|postgresql|file [--dav-cms-sharing] [PYTEST ARGS...]" >&2
    exit 2
}

[ "$#" -ge 2 ] || usage
checkout="$(cd "$1" && pwd)"
engine="$2"
shift 2
case "$engine" in
    sqlite | postgresql | file) ;;
    *) usage ;;
esac
sharing="${DAV_CMS_SUITE_SHARING:-0}"
if [ "${1:-}" = "--dav-cms-sharing" ]; then
    sharing=1
    shift
fi

project="$(cd "$(dirname "$0")/.." && pwd)"
venv="${SUITE_VENV:-${TMPDIR:-/tmp}/dav-cms-radicale-suite-venv}"
tests="${SUITE_TESTS:-test_base.py test_storage.py test_sharing.py test_rights.py}"
source_dir="$checkout/radicale/tests"

[ -f "$source_dir/__init__.py" ] || {
    echo "$checkout is not a Radicale checkout (no radicale/tests/__init__.py)" >&2
    exit 2
}
case "$(realpath -m "$venv")" in
    "$project"/*) echo "SUITE_VENV must be outside the project ($project)" >&2; exit 2 ;;
esac

if [ ! -x "$venv/bin/python" ]; then
    "${SUITE_PYTHON:-python3}" -m venv "$venv"
fi
if [ "${SUITE_SKIP_INSTALL:-0}" != 1 ]; then
    "$venv/bin/pip" install -q --disable-pip-version-check \
        -e "$project" "radicale${RADICALE_VERSION:+==$RADICALE_VERSION}" pytest
fi

package="$("$venv/bin/python" -c 'import os, radicale; print(os.path.dirname(radicale.__file__))')"
target="$package/tests"
mkdir -p "$target"

# The checkout's test package, minus what the installed wheel already ships.
rm -rf "$target"/test_*.py "$target/static" "$target/__pycache__"
cp "$source_dir/__init__.py" "$source_dir/helpers.py" "$target/"
cp -R "$source_dir/static" "$target/static"
[ -d "$target/custom" ] || cp -R "$source_dir/custom" "$target/custom"
files=()
for name in $tests; do
    cp "$source_dir/$name" "$target/$name"
    files+=("$name")
done
cp "$project/compat/radicale_suite/conftest.py" "$target/conftest.py"
# Pin the rootdir: no configuration file of an enclosing folder applies.
printf '[pytest]\n' > "$target/pytest.ini"

echo "Radicale $("$venv/bin/python" -c 'import radicale; print(radicale.VERSION)') from $package"
echo "tests from $source_dir: ${files[*]}; storage: $engine; dav_cms.sharing for csv: $sharing"
cd "$target"
export DAV_CMS_SUITE_ENGINE="$engine"
export DAV_CMS_SUITE_SHARING="$sharing"
exec "$venv/bin/python" -m pytest -p no:cacheprovider -c pytest.ini --rootdir "$target" \
    "${files[@]}" "$@"
