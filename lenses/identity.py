"""`identity`: changes nothing. Its row must equal the baseline, bit for bit."""

from lenscope.lenses.base import Lens


class Identity(Lens):
    kind = "identity"
    summary = "changes nothing; its row must reproduce the baseline exactly"

    def is_neutral(self) -> bool:
        return True
