"""Custom kernels with an MLX-ops reference for each, a first-use self-test and a
dispatcher: the kernel runs only where Metal is available and it matched the
reference on this machine; everywhere else the reference runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import mlx.core as mx

from lenscope.metal import attention_probs as _ap

TOLERANCE = 1e-4


@dataclass
class Kernel:
    name: str
    reference: Callable
    metal: Callable
    sample: Callable[[], tuple]
    status: str = "untested"  # untested | ok | failed: ... | unavailable
    detail: str = ""

    def selftest(self) -> None:
        if not mx.metal.is_available():
            self.status, self.detail = "unavailable", "no Metal here; the MLX-ops reference runs"
            return
        args = self.sample()
        try:
            want = self.reference(*args)
            with mx.stream(mx.gpu):
                got = self.metal(*args)
            err = float(mx.max(mx.abs(want - got)))
        except Exception as exc:  # a kernel that fails to compile must not take the app down
            self.status, self.detail = "failed", f"{type(exc).__name__}: {exc}"
            return
        ok = err <= TOLERANCE
        self.status = "ok" if ok else "failed"
        self.detail = f"max error {err:.1e} vs reference" + ("" if ok else "; using the reference")

    def __call__(self, *args):
        if self.status == "untested":
            self.selftest()
        return (self.metal if self.status == "ok" else self.reference)(*args)


KERNELS = {
    "attention_probs": Kernel("attention_probs", _ap.reference, _ap.kernel, _ap.sample_inputs),
}


def attention_probs(queries, keys, scale, bias=None):
    return KERNELS["attention_probs"](queries, keys, scale, bias)


def selftest_all() -> list[dict]:
    out = []
    for k in KERNELS.values():
        if k.status == "untested":
            k.selftest()
        out.append({"name": k.name, "status": k.status, "detail": k.detail})
    return out
