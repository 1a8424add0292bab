"""A small LangGraph agent whose memory lives in sealroom, one sealed room per end user.

Per-user thread memory (the checkpointer) and long-term memory (the store) are built from the
end user's token for each request, so one compiled graph serves every user and the token alone
decides whose state it reads. The chat model is a fake that echoes its prompt, so this runs
offline; swap in any LangChain chat model.

    ALICE=$(sealroom token --sub alice) BOB=$(sealroom token --sub bob) \\
        python examples/langgraph_agent.py          # against http://localhost:7878

Needs ``pip install "./clients/python[langgraph]"``.
"""

from __future__ import annotations

import os

from langchain_core.language_models.fake_chat_models import ParrotFakeChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.config import get_store
from langgraph.graph import START, MessagesState, StateGraph

from sealroom.langgraph import SealroomSaver, SealroomStore

URL = os.environ.get("SEALROOM_URL", "http://localhost:7878")
model = ParrotFakeChatModel()  # answers with the last message it was given


def agent(state: MessagesState) -> dict[str, list]:
    store = get_store()  # the store of this invocation: the end user's
    said = str(state["messages"][-1].content)
    if said.startswith("remember "):
        fact = said.removeprefix("remember ")
        store.put(("memories",), f"fact-{abs(hash(fact))}", {"text": fact})
    recalled = [hit.value["text"] for hit in store.search(("memories",), query=said, limit=3)]
    prompt = [SystemMessage(f"What you know about this user: {recalled}"), *state["messages"]]
    reply = model.invoke([*prompt, HumanMessage(f"(I know: {recalled}) you said: {said}")])
    return {"messages": [reply]}


builder = StateGraph(MessagesState)
builder.add_node("agent", agent)
builder.add_edge(START, "agent")
graph = builder.compile()  # compiled once; the saver and store come with each request


def chat(token: str, text: str) -> str:
    """One turn for the user whose token this is, in their thread "chat"."""
    saver = SealroomSaver(URL, token)
    store = SealroomStore(URL, token, index={"fields": ["text"]})
    # A copy of the compiled graph bound to this user's state (cheap: nothing is recompiled).
    user_graph = graph.copy({"checkpointer": saver, "store": store})
    result = user_graph.invoke({"messages": [HumanMessage(text)]}, {"configurable": {"thread_id": "chat"}})
    history = len(result["messages"])
    saver.close()
    store.close()
    return f"{result['messages'][-1].content}  [{history} messages in this user's thread]"


if __name__ == "__main__":
    alice, bob = os.environ["ALICE"], os.environ["BOB"]
    print("alice:", chat(alice, "remember my seat is the window seat"))
    print("bob:  ", chat(bob, "what is my seat?"))  # the same thread id, Bob's own room: nothing
    print("alice:", chat(alice, "what is my seat?"))  # finds her memory, and her thread has grown
