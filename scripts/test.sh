#!/usr/bin/env bash
# All the set-up the test suite needs on a fresh Debian machine with Python 3.11+, then the whole suite:
#   system packages (redis-server, chromium, a Java runtime for Spark): apt-get when root, otherwise a
#   message naming them; a virtual environment (.venv, or $PULSEREC_VENV) with every extra the tests
#   import; then pytest, where a skipped test counts as a failure (a real component went missing).
# Arguments are passed to pytest (`scripts/test.sh tests/cli -x`). `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1

PYTHON=${PYTHON:-python3}
VENV=${PULSEREC_VENV:-.venv}
EXTRAS=dev,seq,ranker,spark,embed,kafka   # everything a test imports (torch comes from the seq extra's pin)

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)          # tests/redis_fixture.py
command -v chromium >/dev/null 2>&1 || need+=(chromium)                  # the dashboard tests (playwright drives it)
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)          # Spark training tests (Java 17+)
[ -d "$VENV" ] || "$PYTHON" -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing system packages: ${need[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "error: the tests need these system packages: ${need[*]}" >&2
    echo "install them as root, then run this again:  sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel
"$VENV/bin/python" -m pip install -q -e ".[$EXTRAS]"

# The MovieLens tests read ml-latest-small from ../shared/data or $PULSEREC_MOVIELENS (never copied here).
if [ -z "${PULSEREC_MOVIELENS:-}" ] && [ ! -f ../shared/data/ml-latest-small/ratings.csv ]; then
  echo "error: MovieLens ml-latest-small not found at ../shared/data/ml-latest-small; set PULSEREC_MOVIELENS" >&2
  exit 1
fi

export PULSEREC_NO_SKIPS=1   # tests/no_skips.py: a skip fails the run, as under CI=true
set +e
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
status=$?
set -e
if [ "$status" = 5 ]; then   # pytest's "no tests collected": not a pass
  echo "error: pytest collected no tests (arguments: ${*:-none})" >&2
  exit 1
fi
exit "$status"
