"""Under CI=true a skip (a missing real component) fails the run; elsewhere it stays a skip."""

import pytest

SKIPPING = """
import pytest

def test_needs_a_missing_part():
    pytest.skip("frobnicator is not installed")

@pytest.fixture
def part():
    pytest.skip("no part")

def test_uses_a_fixture_that_skips(part):
    pass

def test_fine():
    pass

@pytest.mark.xfail(reason="known")
def test_expected_to_fail():
    assert False
"""
MODULE_LEVEL = """
import pytest
pytest.importorskip("a_module_that_is_not_there")

def test_never_collected():
    pass
"""


@pytest.fixture
def suite(pytester):
    pytester.makepyfile(test_skipping=SKIPPING)
    return pytester


@pytest.mark.parametrize("variable", [("CI", "true"), ("PULSEREC_NO_SKIPS", "1")])
def test_under_ci_every_skip_fails_and_names_its_cause(suite, monkeypatch, variable):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("PULSEREC_NO_SKIPS", raising=False)
    monkeypatch.setenv(*variable)
    result = suite.runpytest("-p", "no_skips")
    outcomes = result.parseoutcomes()
    assert outcomes.get("skipped", 0) == 0
    # a skip in a test fails it; one in a fixture is a setup error; an xfail stays an xfail
    assert outcomes["failed"] == 1 and outcomes["errors"] == 1 and outcomes["passed"] == 1 and outcomes["xfailed"] == 1
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*skipped under CI=true*frobnicator is not installed*"])


def test_under_ci_a_module_that_skips_at_import_is_a_collection_error(pytester, monkeypatch):
    monkeypatch.setenv("CI", "true")
    pytester.makepyfile(test_module_level=MODULE_LEVEL)
    result = pytester.runpytest("-p", "no_skips")
    assert result.parseoutcomes() == {"errors": 1}
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*skipped under CI=true*a_module_that_is_not_there*"])


def test_outside_ci_skips_stay_skips(suite, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("PULSEREC_NO_SKIPS", raising=False)
    result = suite.runpytest("-p", "no_skips")
    outcomes = result.parseoutcomes()
    assert outcomes["skipped"] == 2 and outcomes["passed"] == 1
    assert result.ret == pytest.ExitCode.OK
