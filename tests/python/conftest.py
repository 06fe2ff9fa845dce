"""Shared fixtures; and a floor on the number of collected tests, so that a suite that silently
collects little (an import error swallowed, a rename) fails instead of passing."""

import os

import pytest

import herald

MIN_TESTS = int(os.environ.get("HERALD_PYTEST_MIN_TESTS", "0"))


def pytest_collection_modifyitems(session, config, items):
    if MIN_TESTS and len(items) < MIN_TESTS:
        raise pytest.UsageError(f"collected {len(items)} tests, expected at least {MIN_TESTS}")


@pytest.fixture
def kernel():
    with herald.Kernel() as k:
        yield k
