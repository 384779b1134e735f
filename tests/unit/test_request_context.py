"""Work deferred until after the answer: never lost, whoever serves the handler."""

from __future__ import annotations

from aigw import request_context


def test_with_no_server_to_run_it_later_deferred_work_runs_at_once() -> None:
    done: list[str] = []
    request_context.defer(lambda: done.append("settled"))
    assert done == ["settled"]


def test_a_failing_task_does_not_stop_the_others() -> None:
    done: list[str] = []

    def broken() -> None:
        raise RuntimeError("database gone")

    tasks = request_context.open_deferred()
    request_context.defer(broken)
    request_context.defer(lambda: done.append("second"))
    request_context.close_deferred()
    assert done == []
    request_context.run_deferred(tasks)
    assert done == ["second"]
    request_context.defer(lambda: done.append("after close"))
    assert done == ["second", "after close"]
