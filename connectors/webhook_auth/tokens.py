"""Mailgun signing tokens seen by this process, to refuse forged reuse.

Mailgun signs ``timestamp + token`` and not the body, so whoever captures
one signed webhook could attach its signature to a body of their own
while the timestamp is fresh. Each token is remembered with a digest of
the body it came with, until its timestamp leaves the freshness window:
the same token with the same body is a genuine retry (the ledger
deduplicates its events), the same token with another body is refused.

The memory is per gateway process; several gateways behind a load
balancer each keep their own.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

MAX_TOKENS = 500_000


class TokenCache:
    def __init__(self, max_tokens: int = MAX_TOKENS) -> None:
        self.max_tokens = max_tokens
        self._seen: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._lock = threading.Lock()  # verifiers run in worker threads

    def claim(self, token: str, body: bytes, forget_at: float, now: float) -> bool:
        """Record ``token`` with ``body``; False if it came before with another body."""
        digest = hashlib.sha256(body).digest()
        with self._lock:
            self._expire(now)
            known = self._seen.get(token)
            if known is not None and known[1] > now:
                return known[0] == digest
            self._seen[token] = (digest, forget_at)
            self._seen.move_to_end(token)
            while len(self._seen) > self.max_tokens:
                self._seen.popitem(last=False)
            return True

    def __len__(self) -> int:
        return len(self._seen)

    def _expire(self, now: float) -> None:
        # Tokens arrive roughly in timestamp order; drop from the old end.
        while self._seen:
            token, (_, forget_at) = next(iter(self._seen.items()))
            if forget_at > now:
                break
            del self._seen[token]
