"""A stand-in for azure-identity's credentials (no Entra ID service runs here)."""

from __future__ import annotations


class FakeTokenCredential:
    """A stand-in for azure-identity's credentials (no Entra ID service runs here)."""

    def __init__(self):
        self.calls = 0

    def get_token(self, *scopes):
        from azure.core.credentials import AccessToken

        self.calls += 1
        self.scopes = scopes
        return AccessToken(f"token-{self.calls}", 1_700_000_000 + 3600)
