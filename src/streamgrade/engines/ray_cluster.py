"""The Ray of a ``grade --engine ray`` run: join a cluster, or start a private one.

Private (``[ray] address`` unset): a single-node Ray started by this process for the run,
stopped at its end, and hardened against what Ray does by default:

- it listens on 127.0.0.1 only: ``_node_ip_address="127.0.0.1"`` and
  ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (without the latter Ray swaps 127.0.0.1 for the
  machine's address, ``services.resolve_ip_for_localhost``, and its gRPC servers take every
  interface); no dashboard;
- token authentication (``RAY_AUTH_MODE=token``) with a fresh 256-bit token handed over in
  ``RAY_AUTH_TOKEN``, so Ray writes no ``~/.ray/auth_token``;
- no usage statistics (``RAY_USAGE_STATS_ENABLED=0``: the reporter probes cloud metadata
  endpoints);
- its sockets and logs in a new folder under the system temp dir (``[ray] temp_dir``),
  removed at the end; one left by a run killed with SIGKILL is removed by the next run
  (its owner's pid is dead). Ray's processes share this process's fate (Linux
  PR_SET_PDEATHSIG), so a SIGKILL of the driver stops them too.

A cluster (``address``: ``auto``, ``host:6379``, ``ray://host:10001``): joined as it is; its
security (token, TLS, network policy) is the operator's.
"""

from __future__ import annotations

import importlib.util
import sys
import logging
import math
import os
import secrets
import shutil
import tempfile
import threading
import warnings
from pathlib import Path

from ..config_ray import RayConfig
from ..errors import ConfigError

log = logging.getLogger("streamgrade.ray")

#: Environment of a private Ray (inherited by its processes).
PRIVATE_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "token",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
}
#: Ray system config of a private Ray: its GCS never comes back (no GCS fault tolerance on
#: one node), so after a SIGKILL of the driver its agents give up in 10 s, not 60 s.
PRIVATE_SYSTEM_CONFIG = {"gcs_rpc_server_reconnect_timeout_s": 10}
TEMP_PREFIX = "streamgrade-ray-"
_OWNER = "owner.pid"
#: The private Ray's object store (bytes): blocks of session refs and results are small.
OBJECT_STORE_BYTES = 512 * 1024 * 1024

__all__ = ["RayCluster", "ray_installed", "PRIVATE_ENV"]


def ray_installed() -> bool:
    """Whether Ray is installed (the extra ``streamgrade[ray]``), without importing it: Ray
    reads its settings (``RAY_AUTH_MODE``) from the environment when first imported."""
    return importlib.util.find_spec("ray") is not None


class RayCluster:
    """Ray for one run. ``start()`` joins ``cfg.address`` or starts a private Ray (module
    docstring); ``shutdown()`` disconnects, stops a private Ray, removes its folder and
    restores the environment; ``shutdown_soon()`` starts that in a background thread (the
    run's end-of-run work overlaps Ray's 1-2 s of stopping; ``shutdown()`` then waits for
    it). ``describe()`` says which, in one line. Raises ConfigError
    when Ray is not installed or cannot be started or reached (the message names the
    address; Ray's own error follows)."""

    def __init__(self, cfg: RayConfig, *, log_level: str = "WARNING"):
        self.cfg = cfg
        self.log_level = log_level
        self.temp_dir: Path | None = None
        self.started = False
        self._saved_env: dict[str, str | None] = {}
        self._stopper: threading.Thread | None = None

    @property
    def private(self) -> bool:
        return self.cfg.address is None

    def start(self) -> None:
        if not ray_installed():
            raise ConfigError("--engine ray needs Ray Data: pip install 'streamgrade[ray]'")
        if self.private:  # before Ray is imported: it reads them then
            self._set_env(PRIVATE_ENV | {"RAY_AUTH_TOKEN": secrets.token_hex(32)}, drop=("RAY_ADDRESS",))
            _refresh_ray_config()
        else:
            self._set_env({"RAY_USAGE_STATS_ENABLED": "0"})
        try:
            import ray
            import ray.data  # noqa: F401 - the extra is ray[data]
        except ImportError as exc:
            self.shutdown()
            raise ConfigError(f"--engine ray needs Ray Data: pip install 'streamgrade[ray]' ({exc})") from None

        level = getattr(logging, self.log_level.upper(), logging.WARNING)
        common = {"logging_level": max(level, logging.WARNING), "log_to_driver": True, "configure_logging": True}
        try:
            if self.private:
                self.temp_dir = self._make_temp_dir()
                cpus = max(os.cpu_count() or 1, math.ceil(self.cfg.pool_size() * self.cfg.cpus_per_actor))
                ray.init(num_cpus=cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                         _temp_dir=str(self.temp_dir), object_store_memory=OBJECT_STORE_BYTES,
                         _system_config=PRIVATE_SYSTEM_CONFIG, **common)
            else:
                ray.init(address=self.cfg.address, **common)
        except Exception as exc:
            self.shutdown()
            where = "a private Ray on 127.0.0.1" if self.private else f"the Ray cluster at {self.cfg.address}"
            raise ConfigError(f"cannot start or reach {where}: {exc}") from None
        self.started = True
        _quiet_ray_data()

    def describe(self) -> str:
        import ray

        cpus = ray.cluster_resources().get("CPU", 0)
        if self.private:
            return f"private Ray {ray.__version__} on 127.0.0.1 ({cpus:g} CPUs, token auth, folder {self.temp_dir})"
        return f"Ray {ray.__version__} cluster at {self.cfg.address} ({cpus:g} CPUs)"

    def shutdown_soon(self) -> None:
        """Start :meth:`shutdown` in a background thread (once); ``shutdown()`` joins it."""
        if self._stopper is None:
            self._stopper = threading.Thread(target=self._shutdown, name="ray-shutdown", daemon=True)
            self._stopper.start()

    def shutdown(self) -> None:
        if self._stopper is not None:
            self._stopper.join()
            self._stopper = None
        self._shutdown()

    def _shutdown(self) -> None:
        if self.started:
            import ray

            try:
                ray.shutdown()
            except Exception as exc:  # stopping must not hide the run's result
                log.warning("Ray did not shut down cleanly: %s", exc)
            self.started = False
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            self.temp_dir = None
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env = {}

    # -- internals ----------------------------------------------------------------------
    def _set_env(self, values: dict[str, str], drop: tuple[str, ...] = ()) -> None:
        for name in (*values, *drop):
            self._saved_env.setdefault(name, os.environ.get(name))
        for name in drop:
            if os.environ.pop(name, None) is not None:
                log.info("%s ignored: the private Ray is used (--ray-address joins a cluster)", name)
        os.environ.update(values)

    def _make_temp_dir(self) -> Path:
        """A new folder for the private Ray (``[ray] temp_dir``, else under the system temp
        dir); folders of earlier runs whose owner died are removed first."""
        if self.cfg.temp_dir:
            path = Path(self.cfg.temp_dir)
            path.mkdir(parents=True, exist_ok=True)
            return path
        base = Path(tempfile.gettempdir())
        for old in base.glob(f"{TEMP_PREFIX}*"):
            try:
                owner = int((old / _OWNER).read_text())
            except (OSError, ValueError):
                continue
            if not _alive(owner):
                shutil.rmtree(old, ignore_errors=True)
        path = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=base))
        (path / _OWNER).write_text(str(os.getpid()))
        return path


def _refresh_ray_config() -> None:
    """When Ray was imported earlier in this process (a second run, a test), make it read
    the environment again, as its own ``_enable_token_auth`` does."""
    if "ray" not in sys.modules:
        return
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _quiet_ray_data() -> None:
    """No progress bars or per-dataset banners on the driver's stderr (streamgrade logs and
    its progress bar say what happens); Ray Data's warnings stay."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled"
    # The read of session refs has one task by design (it relays the driver's queue).
    warnings.filterwarnings("ignore", message=r".*operator only received \d+ input")
