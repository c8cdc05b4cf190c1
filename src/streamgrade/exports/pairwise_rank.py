"""The DPO export's opt-in ``--rank-by pairwise``: rank two runs of a task with an LLM judge.

The export is synchronous and offline by default; this module is the one place it talks
to a judge server. :func:`pairwise_preferer` runs an :class:`~streamgrade.judges.openai.OpenAIJudge`
in an anyio blocking portal (one event loop in a helper thread for the whole export) and
yields a :data:`~streamgrade.exports.dpo.Prefer` callable that asks
:class:`~streamgrade.judges.pairwise.PairwiseJudge` in both orders (Zheng et al. 2023,
arXiv:2306.05685: swap positions, count only consistent wins). A tie (the orders disagree)
gives no pair: PairError with the reason, counted in the export's report.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ..config import Config
from ..errors import ConfigError, JudgeError
from .pairs import PairError
from .store import GradedSession


@contextmanager
def pairwise_preferer(config: Config, api_key: str | None = None, *, transport=None) -> Iterator:
    """Yield ``prefer(a, b) -> (0 or 1, how)`` for two :class:`GradedSession` runs (their
    ``task`` and ``messages`` loaded). Needs ``openai.base_url`` or an API key (raises
    ConfigError otherwise, before anything is sent). ``transport`` replaces httpx's network
    transport (tests). Requests that fail for good give PairError (no pair), not a crash."""
    from anyio.from_thread import start_blocking_portal

    from ..config import api_key as env_key
    from ..judges.openai import OpenAIJudge
    from ..judges.pairwise import PairwiseJudge

    key = api_key if api_key is not None else env_key()
    if not (key or config.openai.base_url):
        raise ConfigError("--rank-by pairwise needs an LLM judge: set openai.base_url or STREAMGRADE_API_KEY")
    with start_blocking_portal() as portal:
        judge = OpenAIJudge(config, api_key=key, transport=transport)
        pj = PairwiseJudge(judge)

        def prefer(a: GradedSession, b: GradedSession) -> tuple[int, str]:
            try:
                pref = portal.call(pj.compare, a.task or b.task, a.messages, b.messages,
                                   f"{a.session_id} vs {b.session_id}")
            except JudgeError as exc:
                raise PairError(f"pairwise judge failed: {exc}") from None
            if pref.winner is None:
                raise PairError(f"pairwise judge: no consistent preference over both orders "
                                f"(P(first better) {pref.p_a:.2f})")
            return pref.winner, f"pairwise (p={max(pref.p_a, 1 - pref.p_a):.2f})"

        try:
            yield prefer
        finally:
            portal.call(judge.aclose)


__all__ = ["pairwise_preferer"]
