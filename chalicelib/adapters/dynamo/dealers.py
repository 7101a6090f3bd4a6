"""Dealers on DynamoDB: vehicles through the ``by-dealer`` index, hand-offs used by one conditional
update (made once by ``once.update_once``: a use whose reply was lost is not refused by its own
retry), the registry of dealer accounts."""

from __future__ import annotations

from datetime import datetime, timedelta

from pynamodb.exceptions import DoesNotExist

from chalicelib.adapters.dynamo.agents import decode_cursor, encode_cursor
from chalicelib.adapters.dynamo.base import utc_aware
from chalicelib.adapters.dynamo.inventory import _vehicle
from chalicelib.adapters.dynamo.models import VehicleModel
from chalicelib.adapters.dynamo.models_dealers import DealerAccountModel, DealerHandoffModel
from chalicelib.adapters.dynamo.once import update_once
from chalicelib.cards.domain.inventory import Vehicle
from chalicelib.dealers.domain import DealerAccount, Handoff
from chalicelib.dealers.ports import DealerAccountRegistry, DealerVehicles, HandoffStore

#: Hand-offs outlive their expiry by this much (then TTL).
_KEEP = timedelta(days=1)


class DynamoDealerVehicles(DealerVehicles):
    def page(self, dealer_code: str, limit: int, cursor: str | None) -> tuple[list[Vehicle], str | None]:
        result = VehicleModel.by_dealer.query(
            dealer_code, limit=limit, last_evaluated_key=decode_cursor(cursor)
        )
        found = [_vehicle(item) for item in result]
        return found, encode_cursor(result.last_evaluated_key)

    def any_of(self, dealer_code: str) -> bool:
        return any(True for _ in VehicleModel.by_dealer.query(dealer_code, limit=1))


def _handoff(item: DealerHandoffModel) -> Handoff:
    return Handoff(
        code_hash=item.code_hash,
        vin=item.vin,
        dealer_code=item.dealer_code,
        dealer_account_id=item.dealer_account_id,
        created_at=utc_aware(item.created_at),
        expires_at=utc_aware(item.expires_at),
        used_at=utc_aware(item.used_at) if item.used_at else None,
        used_by=item.used_by,
        registration_id=item.registration_id,
    )


class DynamoHandoffStore(HandoffStore):
    def create(self, handoff: Handoff) -> None:
        DealerHandoffModel(
            handoff.code_hash,
            vin=handoff.vin,
            dealer_code=handoff.dealer_code,
            dealer_account_id=handoff.dealer_account_id,
            created_at=handoff.created_at,
            expires_at=handoff.expires_at,
            expires_epoch=int((handoff.expires_at + _KEEP).timestamp()),
        ).save(condition=DealerHandoffModel.code_hash.does_not_exist())

    def get(self, code_hash: str) -> Handoff | None:
        try:
            return _handoff(DealerHandoffModel.get(code_hash, consistent_read=True))
        except DoesNotExist:
            return None

    def use(self, handoff: Handoff, owner: str, now: datetime) -> bool:
        return update_once(
            DealerHandoffModel(handoff.code_hash),
            DealerHandoffModel.attempts,
            [DealerHandoffModel.used_at.set(now), DealerHandoffModel.used_by.set(owner)],
            DealerHandoffModel.code_hash.exists()
            & DealerHandoffModel.used_at.does_not_exist()
            & (DealerHandoffModel.expires_at > now),
        )

    def attach(self, code_hash: str, registration_id: str) -> None:
        DealerHandoffModel(code_hash).update(
            actions=[DealerHandoffModel.registration_id.set(registration_id)],
            condition=DealerHandoffModel.code_hash.exists(),
        )


class DynamoDealerAccountRegistry(DealerAccountRegistry):
    def add(self, entry: DealerAccount) -> None:
        DealerAccountModel(
            entry.dealer_code,
            entry.account_id,
            login_name=entry.login_name,
            created_at=entry.created_at,
            created_by=entry.created_by,
        ).save()

    def of_dealer(self, dealer_code: str) -> list[DealerAccount]:
        return [_entry(item) for item in DealerAccountModel.query(dealer_code)]

    def get(self, dealer_code: str, account_id: str) -> DealerAccount | None:
        try:
            return _entry(DealerAccountModel.get(dealer_code, account_id))
        except DoesNotExist:
            return None


def _entry(item: DealerAccountModel) -> DealerAccount:
    return DealerAccount(
        dealer_code=item.dealer_code,
        account_id=item.account_id,
        login_name=item.login_name,
        created_at=utc_aware(item.created_at),
        created_by=item.created_by,
    )
