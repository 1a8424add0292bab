"""The LangGraph adapters against a real server: LangGraph's own checkpointer conformance suite
(async methods, and the sync methods through a thin adapter), a real graph with an interrupt,
two users of one graph with equal thread ids and namespaces, and the store differentially
against LangGraph's own ``InMemoryStore`` (hypothesis).
"""

from __future__ import annotations

import asyncio
import operator
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.report import ProgressCallbacks
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import GetOp, ListNamespacesOp, MatchCondition, PutOp, SearchOp
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command, interrupt

from sealroom.langgraph import SealroomSaver, SealroomStore

from .conftest import Server, start_server, unique

#: Per-user limits high enough that the suites measure correctness, not the rate limiter.
CONFIG = """
[dev_issuer]
enabled = true

[limits]
principal_requests_per_sec = 100000
principal_burst = 100000
principal_requests_in_flight_max = 256
"""


@pytest.fixture(scope="module")
def lg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("sealroom-langgraph"), CONFIG)
    yield running
    running.stop()


def saver_for(server: Server, name: str) -> SealroomSaver:
    return SealroomSaver(server.url, server.token(unique(name)))


# ---------------------------------------------------------------------------------------------
# The conformance suite


class SyncBackedSaver(SealroomSaver):
    """Runs the suite's async calls through the saver's sync methods (the suite itself only
    calls async methods), so the sync paths pass the same tests."""

    async def aget_tuple(self, config):  # type: ignore[no-untyped-def]
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(self, config, *, filter=None, before=None, limit=None):  # type: ignore[no-untyped-def,override]
        for item in await asyncio.to_thread(lambda: list(self.list(config, filter=filter, before=before, limit=limit))):
            yield item

    async def aput(self, config, checkpoint, metadata, new_versions):  # type: ignore[no-untyped-def]
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(self, config, writes, task_id, task_path=""):  # type: ignore[no-untyped-def]
        return await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id):  # type: ignore[no-untyped-def]
        return await asyncio.to_thread(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids):  # type: ignore[no-untyped-def]
        return await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id, target_thread_id):  # type: ignore[no-untyped-def]
        return await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids, *, strategy="keep_latest"):  # type: ignore[no-untyped-def]
        return await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)


CAPABILITIES = {"put", "put_writes", "get_tuple", "list", "delete_thread", "delete_for_runs", "copy_thread", "prune"}


@pytest.mark.anyio
@pytest.mark.parametrize("kind", [SealroomSaver, SyncBackedSaver], ids=["async", "sync"])
async def test_the_langgraph_conformance_suite_passes(lg_server: Server, kind: type[SealroomSaver]) -> None:
    made: list[SealroomSaver] = []

    @checkpointer_test(name=f"sealroom-{kind.__name__}")
    async def factory() -> AsyncIterator[SealroomSaver]:
        # A fresh user (room) per capability, as the suite expects a fresh checkpointer.
        saver = kind(lg_server.url, lg_server.token(unique("conformance")))
        made.append(saver)
        yield saver

    report = await validate(factory, progress=ProgressCallbacks.quiet())
    report.print_report()
    failures = {name: result.failures for name, result in report.results.items() if not result.passed}
    assert report.passed_all_base(), failures
    assert report.passed_all(), failures
    detected = {name for name, result in report.results.items() if result.detected}
    assert detected == CAPABILITIES, detected
    for saver in made:
        saver.close()


# ---------------------------------------------------------------------------------------------
# A real graph


class State(TypedDict):
    notes: Annotated[list[str], operator.add]


def build_graph() -> StateGraph:
    def remember(state: State) -> dict[str, Any]:
        return {"notes": ["remembered"]}

    def confirm(state: State) -> dict[str, Any]:
        answer = interrupt("confirm?")
        return {"notes": [answer]}

    graph = StateGraph(State)
    graph.add_node("remember", remember)
    graph.add_node("confirm", confirm)
    graph.add_edge(START, "remember")
    graph.add_edge("remember", "confirm")
    graph.add_edge("confirm", END)
    return graph


def test_two_users_of_one_graph_with_one_thread_id_never_meet(lg_server: Server) -> None:
    graph = build_graph()
    canaries = {name: f"canary-{uuid.uuid4().hex}-{name}" for name in ("alice", "bob")}
    tokens = {name: lg_server.token(unique(name)) for name in canaries}
    savers = {name: SealroomSaver(lg_server.url, tokens[name]) for name in canaries}
    stores = {name: SealroomStore(lg_server.url, tokens[name]) for name in canaries}
    seen: dict[str, list[str]] = {name: [] for name in canaries}
    config = {"configurable": {"thread_id": "same-thread"}}
    # Interleaved: both start, both are interrupted, both resume.
    for name in canaries:
        app = graph.compile(checkpointer=savers[name], store=stores[name])
        seen[name].append(repr(app.invoke({"notes": [canaries[name]]}, config)))
        stores[name].put(("memories", "same"), "key", {"canary": canaries[name]})
    for name in canaries:
        app = graph.compile(checkpointer=savers[name], store=stores[name])
        result = app.invoke(Command(resume=f"yes from {name}"), config)
        seen[name].append(repr(result))
        assert result["notes"] == [canaries[name], "remembered", f"yes from {name}"]
        history = list(app.get_state_history(config))
        seen[name].extend(repr(snapshot) for snapshot in history)
        assert len(history) >= 4
        seen[name].append(repr(stores[name].get(("memories", "same"), "key")))
        seen[name].append(repr(stores[name].search(("memories",))))
        seen[name].append(repr(stores[name].list_namespaces()))
        seen[name].append(repr(list(savers[name].list(None))))
    for name, received in seen.items():
        text = "\n".join(received)
        assert canaries[name] in text
        for other, canary in canaries.items():
            if other != name:
                assert canary not in text, f"{name} received {other}'s canary"
    for saver in savers.values():
        saver.close()


@pytest.mark.anyio
async def test_the_async_saver_runs_a_graph_with_an_interrupt(lg_server: Server) -> None:
    saver = saver_for(lg_server, "async-graph")
    app = build_graph().compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "t"}}
    first = await app.ainvoke({"notes": ["start"]}, config)
    assert "__interrupt__" in first
    done = await app.ainvoke(Command(resume="ok"), config)
    assert done["notes"] == ["start", "remembered", "ok"]
    state = await app.aget_state(config)
    assert state.values["notes"] == ["start", "remembered", "ok"]
    saver.close()


# ---------------------------------------------------------------------------------------------
# The store, differentially against InMemoryStore

LABELS = st.sampled_from(["a", "b", "c", "docs", "ü"])
NAMESPACES = st.lists(LABELS, min_size=1, max_size=3).map(tuple)
KEYS = st.sampled_from(["k1", "k2", "k3"])
SCALARS = st.one_of(st.integers(min_value=-5, max_value=5), st.sampled_from(["x", "y", "z"]))
VALUES = st.fixed_dictionaries({"n": st.integers(min_value=0, max_value=9), "tag": SCALARS})

PUTS = st.builds(lambda ns, key, value: PutOp(ns, key, value), NAMESPACES, KEYS, VALUES)
DELETES = st.builds(lambda ns, key: PutOp(ns, key, None), NAMESPACES, KEYS)
GETS = st.builds(GetOp, NAMESPACES, KEYS)
FILTERS = st.one_of(
    st.none(),
    st.builds(lambda tag: {"tag": tag}, SCALARS),
    st.builds(lambda n: {"n": {"$gte": n}}, st.integers(min_value=0, max_value=9)),
    st.builds(lambda n: {"n": {"$ne": n}}, st.integers(min_value=0, max_value=9)),
)
SEARCHES = st.builds(
    lambda prefix, filter, limit, offset: SearchOp(prefix, filter, limit, offset),
    st.lists(LABELS, max_size=2).map(tuple),
    FILTERS,
    st.integers(min_value=1, max_value=8),
    st.integers(min_value=0, max_value=4),
)
LISTS = st.builds(
    lambda prefix, suffix, depth, limit, offset: ListNamespacesOp(
        tuple(
            condition
            for condition in (
                MatchCondition("prefix", prefix) if prefix is not None else None,
                MatchCondition("suffix", suffix) if suffix is not None else None,
            )
            if condition is not None
        )
        or None,
        depth,
        limit,
        offset,
    ),
    st.one_of(st.none(), st.lists(st.one_of(LABELS, st.just("*")), min_size=1, max_size=2).map(tuple)),
    st.one_of(st.none(), st.lists(st.one_of(LABELS, st.just("*")), min_size=1, max_size=2).map(tuple)),
    st.one_of(st.none(), st.integers(min_value=1, max_value=3)),
    st.integers(min_value=1, max_value=10),
    st.integers(min_value=0, max_value=3),
)
STEPS = st.lists(st.one_of(PUTS, PUTS, DELETES, GETS, SEARCHES, LISTS), min_size=1, max_size=25)


def expected_namespaces(reference: InMemoryStore, op: ListNamespacesOp) -> list[tuple[str, ...]]:
    """The reference's answer without its ghost namespaces (InMemoryStore keeps a namespace a
    read touched or whose last item went; a real store lists namespaces that hold items)."""
    live = [namespace for namespace, items in reference._data.items() if items]  # noqa: SLF001
    filtered = [
        namespace
        for namespace in live
        if all(
            len(namespace) >= len(condition.path)
            and all(
                want in ("*", have)
                for want, have in zip(
                    condition.path,
                    namespace if condition.match_type == "prefix" else namespace[len(namespace) - len(condition.path) :],
                    strict=False,
                )
            )
            for condition in op.match_conditions or ()
        )
    ]
    if op.max_depth is not None:
        filtered = [namespace[: op.max_depth] for namespace in filtered]
    return sorted(set(filtered))[op.offset : op.offset + op.limit]


def same_answer(op: Any, ours: Any, theirs: Any, reference: InMemoryStore) -> None:
    if isinstance(op, GetOp):
        described = None if theirs is None else (theirs.namespace, theirs.key, theirs.value)
        assert (None if ours is None else (ours.namespace, ours.key, ours.value)) == described, op
    elif isinstance(op, SearchOp):
        # Orders differ by design (InMemoryStore: insertion; sealroom: namespace then key), so a
        # page is compared by size, and the whole result as a set.
        def key(item: Any) -> tuple[Any, ...]:
            return (item.namespace, item.key, tuple(sorted(item.value.items())))

        everything = SearchOp(op.namespace_prefix, op.filter, 1000, 0)
        whole = {key(item) for item in reference.batch([everything])[0]}
        assert len(ours) == len(theirs), (op, ours, theirs)
        assert {key(item) for item in ours} <= whole, op
    elif isinstance(op, ListNamespacesOp):
        assert ours == expected_namespaces(reference, op), op


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(steps=STEPS)
def test_the_store_answers_like_langgraphs_in_memory_store(lg_server: Server, steps: Sequence[Any]) -> None:
    store = SealroomStore(lg_server.url, lg_server.token(unique("store")))
    reference = InMemoryStore()
    for op in steps:
        theirs = reference.batch([op])[0]
        ours = store.batch([op])[0]
        same_answer(op, ours, theirs, reference)
    # And the whole state at the end, as sets.
    final = SearchOp((), None, 1000, 0)
    def whole(items: Any) -> set[tuple[Any, ...]]:
        return {(item.namespace, item.key, tuple(sorted(item.value.items()))) for item in items}

    assert whole(store.batch([final])[0]) == whole(reference.batch([final])[0])
    store.close()


def test_a_batch_reads_before_its_writes_and_the_last_put_wins(lg_server: Server) -> None:
    store = SealroomStore(lg_server.url, lg_server.token(unique("batch")))
    reference = InMemoryStore()
    ops = [PutOp(("z",), "k", {"v": 1}), GetOp(("z",), "k"), PutOp(("z",), "k", {"v": 2})]
    assert store.batch(ops) == reference.batch(ops) == [None, None, None]
    assert store.get(("z",), "k").value == {"v": 2}


def test_search_with_an_index_ranks_by_text_and_ttls_expire_items(lg_server: Server) -> None:
    store = SealroomStore(lg_server.url, lg_server.token(unique("index")), index={"fields": ["text"]})
    store.put(("docs",), "paris", {"text": "the eiffel tower in paris"})
    store.put(("docs",), "rome", {"text": "the colosseum in rome"})
    store.put(("docs",), "unindexed", {"text": "paris again"}, index=False)
    hits = store.search(("docs",), query="paris")
    assert [hit.key for hit in hits] == ["paris"]
    assert hits[0].score is not None and hits[0].score > 0
    store.put(("docs",), "short", {"text": "brief"}, ttl=1 / 60)  # one second
    assert store.get(("docs",), "short") is not None
    import time

    time.sleep(2.1)
    assert store.get(("docs",), "short") is None


@pytest.mark.anyio
async def test_the_async_store(lg_server: Server) -> None:
    store = SealroomStore(lg_server.url, lg_server.token(unique("async-store")))
    await store.aput(("users", "prefs"), "theme", {"value": "dark"})
    item = await store.aget(("users", "prefs"), "theme")
    assert item is not None and item.value == {"value": "dark"}
    assert await store.alist_namespaces(prefix=("users",)) == [("users", "prefs")]
    assert [found.key for found in await store.asearch(("users",), filter={"value": "dark"})] == ["theme"]
    await store.adelete(("users", "prefs"), "theme")
    assert await store.aget(("users", "prefs"), "theme") is None


def test_the_example_agent_runs_and_keeps_users_apart(lg_server: Server) -> None:
    example = Path(__file__).parent.parent / "examples" / "langgraph_agent.py"
    environment = {
        **os.environ,
        "SEALROOM_URL": lg_server.url,
        "ALICE": lg_server.token(unique("alice")),
        "BOB": lg_server.token(unique("bob")),
        "PYTHONPATH": str(Path(__file__).parent.parent),
    }
    done = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, env=environment, timeout=120)
    assert done.returncode == 0, done.stderr
    alice_first, bob, alice_again = done.stdout.splitlines()
    assert "window seat" in alice_first and "[2 messages" in alice_first
    assert "I know: []" in bob and "[2 messages" in bob
    assert "window seat" in alice_again and "[4 messages" in alice_again


def test_requests_beyond_a_server_page_are_split(lg_server: Server) -> None:
    token = lg_server.token(unique("pages"))
    saver = SealroomSaver(lg_server.url, token)
    saver.delete_for_runs([f"run-{index}" for index in range(450)])  # three requests
    saver.prune([f"thread-{index}" for index in range(201)], strategy="delete")
    store = SealroomStore(lg_server.url, token)
    for index in range(210):
        store.put(("many", f"n{index:03}"), "k", {"i": index})
    found = store.list_namespaces(prefix=("many",), limit=500)
    assert len(found) == 210 and found == sorted(found)
    assert store.list_namespaces(prefix=("many",), offset=205, limit=500) == found[205:]
    both = ListNamespacesOp(
        (MatchCondition("prefix", ("many",)), MatchCondition("prefix", ("*", "n001")), MatchCondition("suffix", ("n001",))),
        None,
        10,
        0,
    )
    assert store.batch([both]) == [[("many", "n001")]]
    saver.close()
    store.close()
