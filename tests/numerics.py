"""Comparing logits across rows of a batch.

A row's logits do not depend on the other rows, but their last bits can: BLAS kernels
that are not batch-invariant (OpenBLAS on AMD Zen) round row 1 of a batch differently from
row 0, by up to ~1e-5 on logits of magnitude ~10 (measured on the demo model). "The
same" below means within that rounding; anything a lens does moves logits far more.
"""

import numpy as np

ROW_ATOL = 1e-4


def same_logits(a, b) -> bool:
    return np.allclose(np.asarray(a), np.asarray(b), rtol=0.0, atol=ROW_ATOL)
