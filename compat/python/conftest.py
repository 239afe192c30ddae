"""Shared fixtures: the broker under test (compat/run.sh starts it and sets
BOOTSTRAP) and a fresh topic name per test."""

import os
import time
import uuid

import pytest


@pytest.fixture
def bootstrap():
    address = os.environ.get("BOOTSTRAP")
    if not address:
        pytest.fail("BOOTSTRAP is not set: run these through compat/run.sh")
    return address


@pytest.fixture
def topic_name(request):
    return f"compat-{request.node.name.replace('_', '-')}-{uuid.uuid4().hex[:8]}"


def wait_until(condition, timeout_s=20.0, interval_s=0.1, what="condition"):
    """Polls `condition` until it returns a true value or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)
