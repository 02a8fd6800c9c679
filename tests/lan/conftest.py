"""LAN tests run in network namespaces; without them every test here skips, saying why."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack

import pytest

from tests.lan.netns import Child, Lan, lan, netns_available


@pytest.fixture
def make_lan() -> Iterator[Callable[[int], Lan]]:
    """``make_lan(n)``: n namespaces on one segment, deleted after the test."""
    reason = netns_available()
    if reason is not None:
        pytest.skip(f"network namespaces unavailable: {reason}")
    with ExitStack() as stack:
        yield lambda n: stack.enter_context(lan(n))


@pytest.fixture
async def spawn(
    make_lan: Callable[[int], Lan],
) -> AsyncIterator[Callable[..., Awaitable[Child]]]:
    """``await spawn(netns, code, *args)``: a Child, stopped before the namespaces go."""
    children: list[Child] = []

    async def start(netns: str, code: str, *args: str, name: str = "") -> Child:
        child = await Child.start(netns, code, *args, name=name)
        children.append(child)
        return child

    yield start
    await asyncio.gather(*(child.close() for child in children))
