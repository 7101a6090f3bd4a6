"""The enterprise registry's store in memory, with the conditional writes of the DynamoDB one."""

from __future__ import annotations

from chalicelib.enterprise.domain import Enterprise
from chalicelib.enterprise.ports import EnterpriseStore


class FakeEnterpriseStore(EnterpriseStore):
    def __init__(self) -> None:
        self.items: dict[str, Enterprise] = {}

    def get(self, uscc: str) -> Enterprise | None:
        return self.items.get(uscc)

    def put_new(self, enterprise: Enterprise) -> bool:
        if enterprise.uscc in self.items:
            return False
        self.items[enterprise.uscc] = enterprise
        return True

    def delete_if_owned(self, uscc: str, legal_account_id: str) -> bool:
        held = self.items.get(uscc)
        if held is None or held.legal_account_id != legal_account_id:
            return False
        del self.items[uscc]
        return True
