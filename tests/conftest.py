import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest


def pytest_configure(config):
    """Run the suite on a fast BLAS when the machine has one, as the `lenscope` command does
    (models/blas.py): with MLX's reference BLAS the real-model tier is ~10x slower.
    Re-executes pytest once with the system OpenBLAS preloaded, before MLX is imported;
    LENSCOPE_BLAS=reference opts out."""
    import sys

    from lenscope.models import blas

    if "mlx.core" in sys.modules:
        return
    # only a plain `pytest` / `python -m pytest` process: not coverage, an IDE's runner or
    # a program that calls pytest.main and carries on after it
    if "coverage" in sys.modules or os.path.basename(sys.argv[0]) not in ("pytest", "py.test", "__main__.py"):
        return
    env = blas.preload_env()
    if env is None:
        return
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.stop_global_capturing()  # give the new process the real stdout and stderr
    try:
        os.execve(sys.executable, [sys.executable, "-m", "pytest", *config.invocation_params.args], env)
    except OSError:
        if capture is not None:
            capture.start_global_capturing()  # go on as this process, on the reference BLAS


@pytest.fixture(scope="session")
def loaded():
    from lenscope import models

    return models.load(None)


@pytest.fixture(scope="session")
def engine(loaded):
    from lenscope.core.engine import Engine

    return Engine(loaded)


REAL_MODEL_FIXTURES = {"smollm2_engine", "gemma_engine"}


def pytest_collection_modifyitems(config, items):
    """A test that runs a real model carries the real_model mark (so `-m "not real_model"`
    leaves every one of them out): one that uses their fixtures without it is an error."""
    unmarked = [item.nodeid for item in items if REAL_MODEL_FIXTURES & set(getattr(item, "fixturenames", ()))
                and item.get_closest_marker("real_model") is None]
    if unmarked:
        raise pytest.UsageError("runs a real model without @pytest.mark.real_model: " + ", ".join(unmarked))


def real_model_or_skip(fetch):
    """A real model's fixture: skipped when it cannot be fetched, unless CI demands it
    (LENSCOPE_REQUIRE_REAL_MODEL=1 in .ci/run), where a skip would hide a failure."""
    from lenscope.errors import BadInput

    try:
        return fetch()
    except BadInput as exc:
        if os.environ.get("LENSCOPE_REQUIRE_REAL_MODEL"):
            raise
        pytest.skip(f"real model unavailable: {exc}")


_REAL_LOADS: dict[str, object] = {}


def load_real(spec: str, load=None):
    """A named real model as lenscope loads it by default (auto precision), once per test
    process: the fixtures and the in-process CLI runs share it. Its conversion and precision
    choice are cached on disk anyway; this saves the tokenizer and dequantization (~10 s a
    load for gemma's 262k vocabulary). Sharing is safe: lenses never write weights, and every
    engine on the model takes the model's own lock (core/model_lock.py)."""
    if spec not in _REAL_LOADS:
        from lenscope import models

        _REAL_LOADS[spec] = (load or models.load)(spec)
    return _REAL_LOADS[spec]


@pytest.fixture(scope="session")
def gemma_engine():
    """gemma-3-270m Q4_K_M (SentencePiece, adds BOS), as lenscope runs it by default."""
    from lenscope.core.engine import Engine

    return Engine(real_model_or_skip(lambda: load_real("gemma3-270m")))


@pytest.fixture(scope="session")
def smollm2_engine():
    """SmolLM2-135M-Instruct as lenscope runs it by default (auto precision)."""
    from lenscope.core.engine import Engine

    return Engine(real_model_or_skip(lambda: load_real("smollm2")))


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """Run `lenscope ARGS` in-process: (exit code, stdout, stderr). A named real model at
    the default precision comes from `load_real` (once per test process)."""
    from lenscope import models
    from lenscope.cli.main import main

    original = models.load

    def load(spec=None, trust_remote_code=False, precision=None, progress=None, lazy=False):
        if spec in ("smollm2", "gemma3-270m") and precision in (None, "auto") and not (trust_remote_code or lazy):
            return load_real(spec, original)
        return original(spec, trust_remote_code=trust_remote_code, precision=precision, progress=progress,
                        lazy=lazy)

    monkeypatch.setattr(models, "load", load)

    def run(*args: str):
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code or 0
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


_exit_status = {"code": 0}


def pytest_sessionfinish(session, exitstatus):
    _exit_status["code"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """MLX used from Textual's worker threads can abort in its exit-time destructors
    (ml-explore/mlx#3126): once pytest has reported, leave with pytest's own status."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status["code"])
