"""The image, compose, the lock and the Kubernetes note say what issue 17 asks of them.

No container engine runs here, so the files are read, not run: the compose file with
a YAML parser (and ``make lint`` against the compose-spec schema), the Dockerfile
with BuildKit's own parser (the ``dockerfile`` package), ``.dockerignore`` with its
matching rules. Their numbers are checked against the code's (the drain against
``Settings``' timeouts, Redis's compact-hash limit against ``RESULTS_VALUE_BYTES``,
the metrics the note scales on against what ``/metrics`` renders). What *can* run
here does: ``bulksend healthcheck`` against a real Redis, real worker processes and
a real ``bulksend serve``.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dockerfile  # type: ignore[import-not-found]  # a Go extension without stubs
import pytest
import redis
import redis.asyncio
from ruamel.yaml import YAML

from bulksend import healthcheck
from bulksend.stack import ServeProcess, WorkerProcesses, free_port
from jobs import keys
from jobs.settings import Settings
from web import metrics
from worker.main import HEALTH_CHECK_INTERVAL_S

ROOT = Path(__file__).resolve().parent.parent
BULKSEND = [sys.executable, "-m", "bulksend"]
LOCK = [sys.executable, str(ROOT / "scripts" / "lock.py"), "--check"]
ENV = {"REDIS_PASSWORD": "s3cret", "BULKSEND_API_TOKEN": "tok"}  # what .env would hold
CALL_MARGIN_S = 2.0  # worker.provider.ProviderClient.call_budget_s = timeout + 2


def drain_bound_s() -> float:
    """The longest a worker's SIGTERM drain takes with the default settings: running jobs
    get ``job_timeout``, then the last call on the wire its budget."""
    fields = Settings.model_fields  # the defaults, whatever this machine's .env says
    job_timeout, provider_timeout = (
        fields["job_timeout"].default,
        fields["provider_timeout"].default,
    )
    return float(job_timeout + provider_timeout + CALL_MARGIN_S)


# --- compose -----------------------------------------------------------------


class MissingVariable(Exception):
    pass


INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """``value`` with compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` and
    ``$$`` resolved from ``env``, the way ``docker compose`` does."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name, op, arg = match["name"], match["op"], match["arg"]
        found = env.get(name)
        unset = found is None or (op is not None and op.startswith(":") and found == "")
        if unset and op is not None and op.endswith("?"):
            raise MissingVariable(f"{name}: {arg}")
        if unset:
            return arg if op is not None and op.endswith("-") else ""
        return found or ""

    return INTERPOLATION.sub(one, value)


def compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    text = (ROOT / "docker-compose.yml").read_text()
    loaded: dict[str, Any] = YAML(typ="safe").load(text)  # merges the << anchors
    return dict(interpolate(loaded, ENV if env is None else env))


def services(env: dict[str, str] | None = None) -> dict[str, Any]:
    found: dict[str, Any] = compose(env)["services"]
    return found


def seconds(duration: str) -> float:
    """A compose duration (``60s``, ``1m30s``) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def redis_options(command: list[str]) -> dict[str, str]:
    assert command[0] == "redis-server"
    pairs = command[1:]
    assert len(pairs) % 2 == 0 and all(p.startswith("--") for p in pairs[::2]), command
    return {k.removeprefix("--"): v for k, v in zip(pairs[::2], pairs[1::2], strict=True)}


def test_compose_passes_its_schema() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--schemafile",
            str(ROOT / "deploy" / "compose-spec.json"),
            str(ROOT / "docker-compose.yml"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_redis_keeps_every_job() -> None:
    redis_service = services()["redis"]
    options = redis_options(redis_service["command"])
    assert options["maxmemory-policy"] == "noeviction"  # eviction would lose jobs
    # A ceiling, so that a full Redis refuses writes rather than being killed.
    assert re.fullmatch(r"\d+[kmg]b", options["maxmemory"])
    assert options["appendonly"] == "yes"
    assert options["appendfsync"] == "everysec"
    assert int(options["hash-max-listpack-value"]) >= keys.RESULTS_VALUE_BYTES
    assert options["requirepass"] == ENV["REDIS_PASSWORD"]
    # Its healthcheck authenticates (redis-cli reads REDISCLI_AUTH) and needs a PONG.
    assert redis_service["environment"]["REDISCLI_AUTH"] == ENV["REDIS_PASSWORD"]
    assert "redis-cli ping" in " ".join(redis_service["healthcheck"]["test"])
    assert any(v.endswith(":/data") for v in redis_service["volumes"])


def test_compose_needs_the_redis_password_and_the_api_token() -> None:
    with pytest.raises(MissingVariable, match="REDIS_PASSWORD"):
        compose({"BULKSEND_API_TOKEN": "tok"})
    with pytest.raises(MissingVariable, match="BULKSEND_API_TOKEN"):
        compose({"REDIS_PASSWORD": "pw"})


def test_every_bulksend_service_reads_env_and_finds_redis_with_the_password() -> None:
    found = services()
    for name in ("worker", "serve", "sandbox"):
        service = found[name]
        assert {"path": ".env", "required": False} in service["env_file"], name
        url = service["environment"]["BULKSEND_REDIS_URL"]
        assert url == f"redis://:{ENV['REDIS_PASSWORD']}@redis:6379/0", name
    for name in ("worker", "serve"):
        assert found[name]["depends_on"]["redis"]["condition"] == "service_healthy", name


def test_workers_are_replicated_and_given_longer_than_their_drain() -> None:
    worker = services()["worker"]
    assert worker["command"] == ["worker"]
    assert int(worker["deploy"]["replicas"]) >= 2
    assert int(services({**ENV, "WORKER_REPLICAS": "7"})["worker"]["deploy"]["replicas"]) == 7
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"
    assert seconds(worker["stop_grace_period"]) > drain_bound_s()


def test_serve_is_checked_on_the_port_it_listens_on() -> None:
    serve = services()["serve"]
    command = serve["command"]
    assert command[0] == "serve"
    port = command[command.index("--port") + 1]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert serve["ports"] == [f"127.0.0.1:{port}:{port}"]  # loopback only
    assert serve["healthcheck"]["test"] == ["CMD", "bulksend", "healthcheck", "serve"]
    assert f"http://127.0.0.1:{port}" == healthcheck.DEFAULT_SERVE_URL
    assert serve["environment"]["BULKSEND_API_TOKEN"] == ENV["BULKSEND_API_TOKEN"]


def test_the_sandbox_runs_only_in_the_dev_profile() -> None:
    found = services()
    assert found["sandbox"]["profiles"] == ["dev"]
    assert found["sandbox"]["command"][0] == "sandbox"
    assert [n for n, s in found.items() if "profiles" in s] == ["sandbox"]


# --- the image ---------------------------------------------------------------


def instructions() -> list[Any]:
    return list(dockerfile.parse_file(str(ROOT / "Dockerfile")))


def stages() -> list[list[Any]]:
    found: list[list[Any]] = []
    for instruction in instructions():
        if instruction.cmd == "FROM":
            found.append([])
        found[-1].append(instruction)
    return found


def only(stage: list[Any], cmd: str) -> Any:
    matching = [i for i in stage if i.cmd == cmd]
    assert len(matching) == 1, f"{cmd}: {len(matching)} in the stage"
    return matching[0]


def test_dockerfile_builds_locked_wheels_then_a_slim_runtime() -> None:
    build, runtime = stages()
    build_runs = " ".join(i.value[0] for i in build if i.cmd == "RUN")
    assert "--require-hashes" in build_runs and "requirements.lock" in build_runs
    assert "--no-deps" in build_runs
    assert only(runtime, "FROM").value[0].startswith("python:3.11-slim")
    install = [i for i in runtime if i.cmd == "RUN" and "pip install" in i.value[0]]
    assert len(install) == 1 and "--no-index" in install[0].value[0]
    assert any("tini" in i.value[0] for i in runtime if i.cmd == "RUN")


def test_dockerfile_copies_every_package_of_the_project() -> None:
    with (ROOT / "pyproject.toml").open("rb") as f:
        include = tomllib.load(f)["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.rstrip("*") for p in include}
    build = stages()[0]
    copied = {src for i in build if i.cmd == "COPY" for src in i.value[:-1]}
    assert packages <= copied
    assert {"pyproject.toml", "README.md", "requirements.lock"} <= copied


def test_the_runtime_runs_the_worker_as_non_root_under_tini() -> None:
    runtime = stages()[-1]
    user = only(runtime, "USER").value[0].split(":")[0]
    assert user not in ("root", "0") and user.isdigit()  # a fixed uid
    assert only(runtime, "ENTRYPOINT").value == ("tini", "--", "bulksend")
    assert only(runtime, "ENTRYPOINT").json  # exec form: tini is PID 1
    assert only(runtime, "CMD").value == ("worker",)
    assert only(runtime, "STOPSIGNAL").value == ("SIGTERM",)
    check = only(runtime, "HEALTHCHECK")
    assert check.value == ("CMD", "bulksend", "healthcheck", "worker")
    options = dict(flag.removeprefix("--").split("=") for flag in check.flags)
    # Failing checks in a row outlast arq's health-check renewal.
    assert seconds(options["interval"]) * int(options["retries"]) > (HEALTH_CHECK_INTERVAL_S)


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether ``.dockerignore``'s ``patterns`` keep ``path`` out of the build context:
    the last pattern matching the path or one of its parents decides; ``!`` re-includes."""
    verdict = False
    parts = path.split("/")
    for pattern in patterns:
        exclude = not pattern.startswith("!")
        glob = pattern.removeprefix("!").strip("/")
        regex = re.escape(glob).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        regex = regex.replace(r"\[", "[").replace(r"\]", "]")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        if any(re.fullmatch(regex, p) for p in prefixes):
            verdict = exclude
    return verdict


def test_dockerignore_lets_in_what_the_build_copies_and_nothing_secret() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    copied = {src for i in stages()[0] if i.cmd == "COPY" for src in i.value[:-1]}
    for needed in [
        *copied,
        "jobs/keys.py",
        "web/dashboard/templates/base.html",
        "web/dashboard/static/vendor/htmx.min.js",
    ]:
        assert not ignored(needed, patterns), needed
    for kept_out in [
        ".env",
        ".git/HEAD",
        ".venv/bin/python",
        ".bulksend/appendonly.aof",
        "tests/conftest.py",
        "tests/data/imports/x.csv",
        "docs/screenshots/overview.png",
        "bench/throughput.py",
        "jobs/__pycache__/keys.cpython-311.pyc",
        "bulksend.egg-info/PKG-INFO",
        ".mypy_cache/x",
    ]:
        assert ignored(kept_out, patterns), kept_out


def test_dockerignore_matching_is_docker_s() -> None:
    """The matcher above, on the rules it relies on."""
    assert ignored("a/b.txt", ["*"]) and not ignored("a/b.txt", ["*", "!a"])
    assert ignored("a/__pycache__/x.pyc", ["**/__pycache__"])
    assert ignored("__pycache__/x.pyc", ["**/__pycache__"])
    assert not ignored("ab/c", ["a"]) and ignored("x/a.pyc", ["**/*.py[co]"])


# --- the lock ----------------------------------------------------------------


def lock_check(pyproject: Path, lock: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LOCK, "--pyproject", str(pyproject), "--lock", str(lock)],
        capture_output=True,
        text=True,
    )


@pytest.fixture
def copies(tmp_path: Path) -> tuple[Path, Path]:
    pyproject = tmp_path / "pyproject.toml"
    lock = tmp_path / "requirements.lock"
    shutil.copy(ROOT / "pyproject.toml", pyproject)
    shutil.copy(ROOT / "requirements.lock", lock)
    return pyproject, lock


def test_the_lock_is_in_sync_with_pyproject() -> None:
    done = subprocess.run(LOCK, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_new_dependency_needs_a_new_lock(copies: tuple[Path, Path]) -> None:
    pyproject, lock = copies
    text = pyproject.read_text()
    pyproject.write_text(text.replace('    "jinja2>=3.1",', '    "jinja2>=3.1",\n    "attrs",'))
    done = lock_check(pyproject, lock)
    assert done.returncode == 1
    assert "changed since requirements.lock" in done.stderr and "run make lock" in done.stderr
    assert "attrs: in pyproject.toml, not in requirements.lock" in done.stderr


def test_a_pin_outside_its_specifier_fails(copies: tuple[Path, Path]) -> None:
    pyproject, lock = copies
    pin = re.search(r"^arq==(\S+) ", lock.read_text(), re.M)
    assert pin is not None
    lock.write_text(lock.read_text().replace(f"arq=={pin[1]} ", "arq==0.20 "))
    done = lock_check(pyproject, lock)
    assert done.returncode == 1
    assert "arq==0.20 does not satisfy arq>=" in done.stderr


def test_a_pin_without_hashes_fails(copies: tuple[Path, Path]) -> None:
    pyproject, lock = copies
    lock.write_text(lock.read_text() + "attrs>=20\n")
    done = lock_check(pyproject, lock)
    assert done.returncode == 1 and "attrs>=20: not pinned with == and --hash" in done.stderr


def test_reordering_dependencies_needs_no_new_lock(copies: tuple[Path, Path]) -> None:
    pyproject, lock = copies
    text = pyproject.read_text()
    first, second = '    "arq>=0.26",\n', '    "redis>=5.0",\n'
    pyproject.write_text(text.replace(first + second, second + first))
    assert pyproject.read_text() != text
    done = lock_check(pyproject, lock)
    assert done.returncode == 0, done.stderr


# --- bulksend healthcheck ------------------------------------------------------


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BULKSEND, *args], env=env, capture_output=True, text=True, timeout=60)


def assert_unhealthy(done: subprocess.CompletedProcess[str], why: str) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and why in done.stderr, done.stderr


def until_healthy(env: dict[str, str], *args: str, timeout: float = 60) -> None:
    """Poll the check (what Docker does) until it passes; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while (done := cli(env, "healthcheck", *args)).returncode != 0:
        assert time.monotonic() < deadline, done.stderr
        time.sleep(0.2)
    assert len(done.stdout.splitlines()) == 1 and done.stderr == ""


def test_worker_unhealthy_without_a_worker(env: dict[str, str]) -> None:
    assert_unhealthy(cli(env, "healthcheck", "worker"), "health-check")


def test_worker_unhealthy_when_redis_does_not_answer(env: dict[str, str]) -> None:
    url = f"redis://:pa55word@127.0.0.1:{free_port()}/0"
    done = cli(env, "healthcheck", "worker", "--url", url)
    assert_unhealthy(done, "does not answer")
    assert "pa55word" not in done.stderr


def test_worker_healthy_while_a_worker_runs_and_not_after(
    env: dict[str, str], tmp_path: Path
) -> None:
    with WorkerProcesses(env, log_dir=tmp_path) as workers:
        workers.start(1)
        until_healthy(env, "worker")
        assert workers.stop() == [0]  # SIGTERM: drained and gone
    # The last worker of the queue took arq's key with it.
    assert_unhealthy(cli(env, "healthcheck", "worker"), "health-check")


@pytest.fixture
def queue(settings: Settings) -> Iterator[tuple[redis.Redis, str]]:
    """arq's health-check key set, as a live worker of the queue would."""
    client = redis.Redis.from_url(str(settings.redis_url))
    client.set(keys.health_check(settings.queue_name), b"j_complete=0")
    yield client, settings.queue_name
    client.close()


def beat(client: redis.Redis, queue: str, host: str, age: float) -> None:
    field = f"{host}:{4242 + int(age)}:abc123"
    client.hset(keys.workers(queue), field, f'{{"at": {time.time() - age}, "running": 0}}')


def test_a_stale_heartbeat_of_this_host_is_unhealthy(
    queue: tuple[redis.Redis, str], settings: Settings
) -> None:
    client, name = queue
    url = str(settings.redis_url)
    assert healthcheck.check_worker(url, name).healthy  # no heartbeat of its own yet
    beat(client, name, "another-host", 10 * healthcheck.STALE_AFTER_S)
    assert healthcheck.check_worker(url, name).healthy  # not this host's
    beat(client, name, socket.gethostname(), 2 * healthcheck.STALE_AFTER_S)
    stale = healthcheck.check_worker(url, name)
    assert not stale.healthy and "heartbeat" in stale.reason
    beat(client, name, socket.gethostname(), 1)  # a restarted worker: the newest counts
    assert healthcheck.check_worker(url, name).healthy


def test_serve_healthy_when_ready_unhealthy_when_not(env: dict[str, str], tmp_path: Path) -> None:
    with ServeProcess({**env, "BULKSEND_API_TOKEN": "t0ken"}, log=tmp_path / "s.log") as up:
        done = cli(env, "healthcheck", "serve", "--url", up.url)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("serve healthy") and done.stderr == ""
    assert_unhealthy(cli(env, "healthcheck", "serve", "--url", up.url), "refused")


def test_serve_unhealthy_while_its_redis_is_away(env: dict[str, str], tmp_path: Path) -> None:
    away = {
        **env,
        "BULKSEND_API_TOKEN": "t0ken",
        "BULKSEND_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
    }
    with ServeProcess(away, log=tmp_path / "s.log") as up:  # /healthz answers: it runs
        assert_unhealthy(cli(env, "healthcheck", "serve", "--url", up.url), "503")


# --- deploy/kubernetes.md ------------------------------------------------------


def manifests() -> dict[str, dict[str, Any]]:
    """The note's YAML examples by ``metadata.name`` and kind."""
    text = (ROOT / "deploy" / "kubernetes.md").read_text()
    found = {}
    for block in re.findall(r"```yaml\n(.*?)```", text, re.S):
        doc = YAML(typ="safe").load(block)
        found[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return found


def test_kubernetes_worker_outlasts_its_drain_and_probes_itself() -> None:
    worker = manifests()["Deployment/bulksend-worker"]["spec"]["template"]["spec"]
    assert worker["terminationGracePeriodSeconds"] > drain_bound_s()
    (container,) = worker["containers"]
    probe = container["livenessProbe"]
    assert probe["exec"]["command"] == ["bulksend", "healthcheck", "worker"]
    assert probe["periodSeconds"] * probe["failureThreshold"] > (HEALTH_CHECK_INTERVAL_S)


def test_kubernetes_serve_probes_readyz_and_healthz() -> None:
    serve = manifests()["Deployment/bulksend-serve"]["spec"]["template"]["spec"]
    (container,) = serve["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


async def test_kubernetes_scales_on_metrics_that_metrics_renders(settings: Settings) -> None:
    scaler = manifests()["ScaledObject/bulksend-worker"]
    assert scaler["spec"]["scaleTargetRef"]["name"] == "bulksend-worker"
    query = scaler["spec"]["triggers"][0]["metadata"]["query"]
    named = set(re.findall(r"bulksend_\w+", query))
    assert "bulksend_queue_depth" in named
    client = redis.asyncio.Redis.from_url(str(settings.redis_url))
    try:
        body, _ = await metrics.render(client, settings)
    finally:
        await client.aclose()
    rendered = set(re.findall(r"^(bulksend_\w+) ", body.decode(), re.M))
    assert named <= rendered
