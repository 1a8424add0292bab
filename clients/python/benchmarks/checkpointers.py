"""Checkpoint put and get-latest through SealroomSaver, beside LangGraph's own InMemorySaver and
SqliteSaver, on the same graph run on the same machine.

The graph is a chat loop: each step appends a message to the state (so checkpoints grow like a
conversation's) until it has run ``--steps`` steps; every saver gets the same runs. The saver's
``put`` and ``get_tuple`` calls are timed where LangGraph makes them. Figures are medians and
99th percentiles in milliseconds, and ratios to the two LangGraph savers from this same run.

    SEALROOM_BIN=target/release/sealroom python clients/python/benchmarks/checkpointers.py

Needs ``langgraph-checkpoint-sqlite`` besides the ``langgraph`` extra.
"""

from __future__ import annotations

import argparse
import operator
import sqlite3
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph

from sealroom.langgraph import SealroomSaver


class Chat(TypedDict):
    messages: Annotated[list[str], operator.add]
    turns: int


def build(steps: int) -> StateGraph:
    def turn(state: Chat) -> dict[str, Any]:
        return {"messages": [f"turn {state['turns']}: " + "a sentence of a conversation. " * 8], "turns": state["turns"] + 1}

    graph = StateGraph(Chat)
    graph.add_node("turn", turn)
    graph.add_edge(START, "turn")
    graph.add_conditional_edges("turn", lambda state: END if state["turns"] >= steps else "turn")
    return graph


def timed(saver: Any, samples: dict[str, list[float]]) -> Any:
    """Wraps the saver's put and get_tuple to record their latency."""
    for name in ("put", "get_tuple"):
        method = getattr(saver, name)

        def wrapper(*args: Any, _method: Any = method, _name: str = name, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return _method(*args, **kwargs)
            finally:
                samples[_name].append((time.perf_counter() - started) * 1000)

        setattr(saver, name, wrapper)
    return saver


def run(saver: Any, steps: int, threads: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {"put": [], "get_tuple": []}
    app = build(steps).compile(checkpointer=timed(saver, samples))
    for _ in range(threads):
        config = {"configurable": {"thread_id": uuid.uuid4().hex}, "recursion_limit": steps * 2 + 10}
        app.invoke({"messages": [], "turns": 0}, config)
        app.get_state(config)  # the latest, as an app reads it back
    return samples


def start_server(binary: str, directory: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    config = directory / "sealroom.toml"
    config.write_text(
        "[dev_issuer]\nenabled = true\n[limits]\nprincipal_requests_per_sec = 100000\nprincipal_burst = 100000\n"
    )
    log = directory / "server.log"
    data = directory / "data"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [binary, "serve", "--config", str(config), "--data-dir", str(data), "--listen", "127.0.0.1:0"],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    for _ in range(300):
        text = log.read_text(errors="replace")
        if "listening on " in text:
            url = text.split("listening on ", 1)[1].split()[0]
            token = subprocess.run(
                [binary, "token", "--sub", "bench", "--data-dir", str(data)], capture_output=True, text=True, check=True
            ).stdout.strip()
            return process, url, token
        time.sleep(0.05)
    process.kill()
    raise SystemExit(f"the server did not start:\n{log.read_text(errors='replace')}")


def summary(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=None, help="the sealroom binary (default: $SEALROOM_BIN)")
    parser.add_argument("--steps", type=int, default=50, help="graph steps per thread")
    parser.add_argument("--threads", type=int, default=20, help="threads (conversations) per saver")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each running every saver once")
    arguments = parser.parse_args()
    import os

    binary = arguments.binary or os.environ.get("SEALROOM_BIN")
    if not binary:
        raise SystemExit("set SEALROOM_BIN or --binary")
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        process, url, token = start_server(binary, directory)
        totals: dict[str, dict[str, list[float]]] = {}
        try:
            for _ in range(arguments.rounds):
                connection = sqlite3.connect(directory / f"sqlite-{uuid.uuid4().hex}.db", check_same_thread=False)
                savers = {
                    "InMemorySaver": InMemorySaver(),
                    "SqliteSaver": SqliteSaver(connection),
                    "SealroomSaver": SealroomSaver(url, token),
                }
                for name, saver in savers.items():  # alternated, so drift falls on all alike
                    samples = run(saver, arguments.steps, arguments.threads)
                    for operation, values in samples.items():
                        totals.setdefault(name, {}).setdefault(operation, []).extend(values)
                savers["SealroomSaver"].close()
                connection.close()
        finally:
            process.terminate()
            process.wait()
    print(f"{arguments.rounds} rounds x {arguments.threads} threads x {arguments.steps} steps per saver")
    print(f"{'saver':<15} {'op':<10} {'calls':>7} {'p50 ms':>9} {'p99 ms':>9}")
    figures: dict[tuple[str, str], tuple[float, float]] = {}
    for name, operations in totals.items():
        for operation, values in operations.items():
            figures[(name, operation)] = summary(values)
            p50, p99 = figures[(name, operation)]
            print(f"{name:<15} {operation:<10} {len(values):>7} {p50:>9.3f} {p99:>9.3f}")
    for operation in ("put", "get_tuple"):
        ours = figures[("SealroomSaver", operation)][0]
        for baseline in ("InMemorySaver", "SqliteSaver"):
            print(f"SealroomSaver {operation} p50 / {baseline}: x{ours / figures[(baseline, operation)][0]:.1f}")


if __name__ == "__main__":
    main()
