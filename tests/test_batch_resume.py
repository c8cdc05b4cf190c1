"""Batch mode after a crash: the ledger's batch tables (judges/batch_store.py) make a
restart resume polling instead of resubmitting, answer stored successes with no HTTP at
all, resubmit only errored requests, and find a batch whose create call was never answered.
The "crash" is a cancellation of everything at a chosen moment: every store write commits
synchronously, so what a kill -9 would leave is what is left."""

from __future__ import annotations

import anyio
import pytest

from batch_fakes import FakeBatchProvider
from streamgrade.errors import JudgeError
from streamgrade.judges.batch_store import BatchStore, Outcome
from test_batch_judge import chunks, grade_all, make_batch_judge
from test_openai_judge import make_session


async def crash_when(judge, sessions: dict, condition) -> None:
    """Grade ``sessions`` with the collector running and stop everything at once as soon
    as ``condition()`` holds (a kill -9 at that moment)."""
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(judge.serve)
            for sid, ch in sessions.items():
                tg.start_soon(judge.grade, make_session(sid), ch)
            while not condition():
                await anyio.sleep(0.005)
            tg.cancel_scope.cancel()
    await judge.aclose()


def store_of(tmp_path) -> BatchStore:
    return BatchStore(tmp_path / "state.sqlite")


@pytest.mark.asyncio
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_submitted_batch_is_polled_again_not_resubmitted(tmp_path, provider):
    fake = FakeBatchProvider(provider, polls_to_end=10_000)
    sessions = {"a": chunks(1, "a"), "b": chunks(1, "b")}
    await crash_when(make_batch_judge(tmp_path, fake), sessions,
                     lambda: fake.created and fake.batches[fake.created[0]]["polls"] >= 1)
    st = store_of(tmp_path)
    assert [s.status for s in st.open_submissions(provider)] == ["submitted"] and st.counts() == {"submitted": 2}
    st.close()
    fake.polls_to_end = 3  # the provider finishes the batch while we are down
    fake.calls.clear()
    judge = make_batch_judge(tmp_path, fake)
    async with judge:
        res = await grade_all(judge, sessions)
    assert all(not isinstance(v, Exception) for v in res.values())
    assert len(fake.created) == 1, "a submitted request was submitted again"
    assert not [c for c in fake.calls if c[0] == "POST"]
    assert judge.snapshot()["resumed"] == 1
    st = store_of(tmp_path)
    assert st.counts() == {"succeeded": 2} and st.open_submissions(provider) == []
    st.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_stored_success_is_answered_with_no_http_at_all(tmp_path, provider):
    fake = FakeBatchProvider(provider)
    sessions = {"a": chunks(1, "a"), "multi": chunks(3, "m")}
    judge = make_batch_judge(tmp_path, fake)
    async with judge:
        first = await grade_all(judge, sessions)
    # a crash after the results were stored, before the sink committed: the run again
    again = FakeBatchProvider(provider)
    judge = make_batch_judge(tmp_path, again)
    async with judge:
        second = await grade_all(judge, sessions)
    assert again.calls == []
    for sid in sessions:
        assert second[sid].summary == first[sid].summary
        assert second[sid].usage.cost_usd == pytest.approx(first[sid].usage.cost_usd)
    assert judge.snapshot()["from_ledger"] == 1 + 4


@pytest.mark.asyncio
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_errored_requests_are_resubmitted_after_a_restart(tmp_path, provider):
    fake = FakeBatchProvider(provider, override=lambda cid, body: "errored" if "bad" in str(body) else None)
    sessions = {"good": chunks(1, "good"), "bad": chunks(1, "bad")}
    judge = make_batch_judge(tmp_path, fake, section={"max_retries": 0})
    async with judge:
        res = await grade_all(judge, sessions)
    assert isinstance(res["bad"], JudgeError) and not isinstance(res["good"], Exception)
    st = store_of(tmp_path)
    assert st.counts() == {"succeeded": 1, "errored": 1}
    st.close()
    fake.override = lambda cid, body: None  # the provider is well again
    judge = make_batch_judge(tmp_path, fake, section={"max_retries": 0})
    async with judge:
        res = await grade_all(judge, sessions)
    assert all(not isinstance(v, Exception) for v in res.values())
    assert len(fake.created) == 2 and len(fake.batches[fake.created[1]]["custom_ids"]) == 1
    assert fake.submitted_after_success == []


@pytest.mark.asyncio
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_batch_created_but_id_lost_is_found_and_polled(tmp_path, provider):
    fake = FakeBatchProvider(provider, hang_after_create=True)
    sessions = {"a": chunks(1, "a"), "b": chunks(2, "b")}
    await crash_when(make_batch_judge(tmp_path, fake), sessions, lambda: bool(fake.created))
    st = store_of(tmp_path)
    [sub] = st.open_submissions(provider)
    assert sub.status == "submitting" and sub.batch_id is None
    st.close()
    fake.hang_after_create = False
    fake.calls.clear()
    judge = make_batch_judge(tmp_path, fake)
    async with judge:
        res = await grade_all(judge, sessions)
    assert all(not isinstance(v, Exception) for v in res.values())
    first = fake.created[0]
    assert judge.snapshot()["recovered"] == 1 and first in judge.snapshot()["batches"]
    # the lost batch was adopted: its requests were not submitted again
    assert fake.submitted_after_success == []
    later = [cid for b in fake.created[1:] for cid in fake.batches[b]["custom_ids"]]
    assert not set(later) & set(fake.batches[first]["custom_ids"])
    assert len(fake.created) == 3  # then chunk 2 of "b", then its verdict
    st = store_of(tmp_path)
    assert st.open_submissions(provider) == []
    st.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_intent_without_a_batch_is_abandoned_and_resubmitted(tmp_path, provider):
    st = store_of(tmp_path)
    fake = FakeBatchProvider(provider)
    judge = make_batch_judge(tmp_path, fake)
    # the intent of the very request the session will make, as a kill before the create left it
    sent: list[bytes] = []
    real = judge.collector.request

    async def spy(cid, body):
        sent.append(cid)
        return await real(cid, body)

    judge.collector.request = spy
    async with judge:
        await grade_all(judge, {"a": chunks(1, "a")})
    cid = sent[0]
    st.db.execute("DELETE FROM batch_requests")
    st.begin(provider, "lost-token", [cid])
    fake2 = FakeBatchProvider(provider)
    judge = make_batch_judge(tmp_path, fake2)
    async with judge:
        res = await grade_all(judge, {"a": chunks(1, "a")})
    assert not isinstance(res["a"], Exception)
    assert len(fake2.created) == 1 and fake2.batches[fake2.created[0]]["custom_ids"] == [cid]
    assert [s.status for s in st.open_submissions(provider)] == []
    assert st.db.execute("SELECT status FROM batch_submissions WHERE token='lost-token'").fetchone() == ("abandoned",)
    st.close()


def test_store_finish_ignores_foreign_lines_and_errors_missing_ones(tmp_path):
    st = store_of(tmp_path)
    sub = st.begin("openai", "t", ["x", "y", "z"])
    other = st.begin("openai", "t2", ["w"])
    stored = st.finish(sub, [Outcome("x", "succeeded", result=b"{}"), Outcome("w", "succeeded", result=b"{}"),
                             Outcome("q", "expired"), Outcome("y", "expired", error="late")], missing_error="missing")
    assert stored == 2
    assert st.request("x").state == "succeeded" and st.request("y").state == "expired"
    z = st.request("z")
    assert z.state == "errored" and z.error == "missing" and z.retryable
    assert st.request("w").state == "submitted" and st.request("w").submission == other
    again = st.begin("openai", "t3", ["y"])
    assert st.request("y").attempts == 2 and st.request("y").submission == again
    st.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_create_timeout_finds_the_batch_instead_of_creating_another(tmp_path, provider):
    fake = FakeBatchProvider(provider, hang_after_create=True)  # every create is made, never answered
    judge = make_batch_judge(tmp_path, fake, section={"timeout_s": 0.2}, upload_timeout_s=0.2)
    async with judge:
        res = await grade_all(judge, {"a": chunks(1, "a"), "b": chunks(2, "b")})
    assert all(not isinstance(v, Exception) for v in res.values())
    assert len(fake.created) == 3 and judge.snapshot()["batches"] == fake.created
    assert fake.submitted_after_success == []
