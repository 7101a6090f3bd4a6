"""Who a card is registered to: a verified party as the operator hears of it (第八条, 第九条(二))."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from chalicelib.cards.domain.limits import HolderKind
from chalicelib.kernel.crypto import KeyedHasher
from chalicelib.kernel.errors import InvalidField
from chalicelib.kernel.personal import Party, PartyKind, id_lookup_value
from chalicelib.operators.domain.messages import PushHolder


class Holder(BaseModel):
    """Who a card is to be registered to: the party, the facts pushed, and the keyed hash of the ID
    (the one-ID count's key; the ID itself is never stored in clear)."""

    model_config = ConfigDict(frozen=True)

    party_id: str
    facts: PushHolder
    id_hash: str


def holder_from_party(party: Party, hasher: KeyedHasher, responsible: Party | None = None) -> Holder:
    """A verified party as a holder; an enterprise's cards go under its responsible person (第九条(二))."""
    enterprise = party.kind is PartyKind.ENTERPRISE
    if enterprise and responsible is None:
        raise InvalidField(
            "holder.responsible_required",
            "单位用户须指定车辆负责人",
            "An enterprise holder needs its responsible person",
            field="responsible_id",
        )
    facts = PushHolder(
        kind=HolderKind.ENTERPRISE if enterprise else HolderKind.INDIVIDUAL,
        name=party.name,
        id_type=party.id_type.value,
        id_number=party.id_number,
        address=party.address,
        phone=party.phone,
        id_valid_until=None
        if party.id_permanent or not party.id_valid_until
        else party.id_valid_until.isoformat(),
        responsible_name=responsible.name if enterprise and responsible else None,
        responsible_id_type=responsible.id_type.value if enterprise and responsible else None,
        responsible_id_number=responsible.id_number if enterprise and responsible else None,
    )
    digest = hasher.digest(id_lookup_value(party.id_type, party.id_number))
    return Holder(party_id=party.party_id, facts=facts, id_hash=digest)
