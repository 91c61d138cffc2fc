"""The README's SDK snippet, as written, over HTTP (MEZZO_URL) and embedded in the process."""

from __future__ import annotations

from mezzo import AgentEvent, AgentWorkspace

TASK = (
    "Review the architecture of the billing service\n"
    '/call lookup_schema {"table": "invoices"}\n'
    '/call request_human_input {"question": "Ship the review?"}'
)


def lookup_schema(table: str) -> str:
    """Return the schema of a database table."""
    return f"{table}(id bigint primary key, total numeric)"


def run_my_tool(args: dict[str, str]) -> str:
    return lookup_schema(**args)


async def test_the_snippet_works_as_written(mode: str) -> None:
    executed: list[tuple[str, dict[str, str]]] = []
    yielded = None

    workspace = await AgentWorkspace.create(
        id="sys_arch_review_991",
        budget_tokens=500000,
        fallback_behavior="suspend",
        tools=[lookup_schema],
    )
    await workspace.submit(TASK)
    async for event in workspace.subscribe(events=["tool_call", "yield", "budget_alert"]):
        match type(event):
            case AgentEvent.ToolCall:
                print(f"Executing: {event.tool.name} with {event.tool.args}")
                executed.append((event.tool.name, event.tool.args))
                await workspace.submit_tool_result(event.call_id, run_my_tool(event.tool.args))
            case AgentEvent.Yield:
                print("Agent explicitly yielded control. Awaiting human input.")
                yielded = event
                break
            case AgentEvent.BudgetAlert:
                await workspace.throttle(rate=0.5)

    assert executed == [("lookup_schema", {"table": "invoices"})]
    assert yielded is not None and yielded.question == "Ship the review?"
    status = await workspace.run_status()
    assert status.status == "awaiting_input"
    assert workspace.info.config.tools[0].parameters["required"] == ["table"]

    await workspace.answer("yes")
    async for event in workspace.subscribe(events=["completed", "failed"]):
        assert type(event) is AgentEvent.Completed
        assert event.output == "echo: yes"
        break
    await workspace.close()


async def test_budget_alert_and_throttle_through_the_sdk(mode: str) -> None:
    workspace = await AgentWorkspace.create(
        id="alerting", budget_tokens=10_000, alert_thresholds=[0.001], fallback_behavior="fail"
    )
    await workspace.submit("hello")
    async for event in workspace.subscribe(events=["budget_alert"]):
        assert type(event) is AgentEvent.BudgetAlert
        assert event.threshold == 0.001 and 0 < event.used <= event.budget
        info = await workspace.throttle(rate=0.5)
        break
    assert info.throttle_rate == 0.5
    assert (await workspace.refresh()).throttle_rate == 0.5
    async for event in workspace.subscribe(events=["throttled"], after=0):
        assert event.data == {"rate": 0.5}
        break
    await workspace.close()
