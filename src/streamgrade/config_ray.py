"""The ``[ray]`` section of the configuration: how ``grade --engine ray`` reaches a Ray
cluster and sizes its actor pool (:mod:`streamgrade.engines.ray_engine`).
:mod:`streamgrade.config` builds it into :class:`~streamgrade.config.Config`;
configs/streamgrade.toml documents every key."""

from __future__ import annotations

import msgspec


class RayConfig(msgspec.Struct, forbid_unknown_fields=True):
    """``[ray]``: the Ray engine (``grade --engine ray``, optional extra ``streamgrade[ray]``).

    ``address`` the cluster to join: None starts a private single-node Ray for the run,
    listening on 127.0.0.1 only (see :mod:`streamgrade.engines.ray_cluster`); ``auto``, a
    ``host:port`` of a head node's GCS, or ``ray://host:10001`` (Ray Client) join an existing
    cluster (CLI ``--ray-address``). ``actors`` the grading actors (a fixed pool), or the
    smallest pool when ``max_actors`` is larger (an autoscaling pool from ``actors`` to
    ``max_actors``); ``cpus_per_actor`` the CPUs each reserves (fractions allowed: an actor
    mostly waits on the judge's HTTP). The provider's limits are shared: ``openai.rpm``,
    ``tpm`` and ``max_cost_usd`` (and ``[anthropic]``'s) are divided by the largest pool
    size, each actor keeping its share. ``block_rows`` sessions the driver sends per block
    (one actor call; its results come back together), ``blocks_per_actor`` the blocks an
    actor grades at once (``block_rows`` x ``blocks_per_actor`` sessions in flight per
    actor; the judge's ``max_concurrency`` bounds its HTTP requests).
    ``temp_dir`` the private Ray's folder of sockets and logs (None: a new folder under the
    system temp dir, removed at the end of the run; keep it short, Unix socket paths are
    limited to 107 bytes)."""

    address: str | None = None
    actors: int = 2
    max_actors: int = 0
    cpus_per_actor: float = 1.0
    block_rows: int = 64
    blocks_per_actor: int = 2
    temp_dir: str | None = None

    def pool_size(self) -> int:
        """The largest number of actors the pool may have (the divisor of shared limits)."""
        return max(self.actors, self.max_actors)


__all__ = ["RayConfig"]
