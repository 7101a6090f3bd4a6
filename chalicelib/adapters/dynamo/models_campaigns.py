"""The tables of backfill campaigns (补登记): ``campaigns`` (one item per campaign, its waves as JSON),
``campaign-sends`` (what each wave did with each card, written conditionally), ``campaign-waves`` (each
wave's counters, its shards' plan cursors and the campaign's token bucket), ``campaign-opt-outs`` (phones
that asked for no more campaign messages, by keyed hash) and ``campaign-calls`` (the call list, phones
sealed)."""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex

from chalicelib.adapters.dynamo.base import TableSpec, Unbound

#: The constant hash key of the ``by-created`` index: every campaign, newest first.
CAMPAIGN_LISTING = "campaign"


class CampaignsByCreated(GlobalSecondaryIndex["CampaignModel"]):  # type: ignore[no-untyped-call]
    """Every campaign under one key, by creation time (campaigns are few: one partition is enough)."""

    class Meta:
        index_name = "by-created"
        projection = AllProjection()

    listing = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class CampaignModel(Unbound):
    """补登记活动: its definition, status and waves (JSON list, a handful of items)."""

    class Meta(Unbound.Meta):
        table_name = "campaigns"

    campaign_id = UnicodeAttribute(hash_key=True)
    listing = UnicodeAttribute(default=CAMPAIGN_LISTING)
    name = UnicodeAttribute()
    deadline = UnicodeAttribute()  # ISO date, China
    waves = UnicodeAttribute()  # JSON list of the waves
    template = UnicodeAttribute()
    channels = ListAttribute[str](of=UnicodeAttribute)  # type: ignore[arg-type]
    rate_per_second = NumberAttribute()
    quiet_start = UnicodeAttribute()  # "HH:MM" China
    quiet_end = UnicodeAttribute()
    send_time = UnicodeAttribute()  # "HH:MM" China
    attribution_days = NumberAttribute()
    status = UnicodeAttribute()
    current_wave = NumberAttribute(default=0)
    created_by = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    version = NumberAttribute(default=1)

    by_created = CampaignsByCreated()


class CampaignSendModel(Unbound):
    """What one wave did with one card: created conditionally (one per card and wave)."""

    class Meta(Unbound.Meta):
        table_name = "campaign-sends"

    iccid = UnicodeAttribute(hash_key=True)
    campaign_wave = UnicodeAttribute(range_key=True)  # f"{campaign_id}#{wave:02d}"
    campaign_id = UnicodeAttribute()
    wave = NumberAttribute()
    status = UnicodeAttribute()
    at = UTCDateTimeAttribute()
    reason = UnicodeAttribute(null=True)
    message_id = UnicodeAttribute(null=True)
    attempts = NumberAttribute(default=0)
    registered_at = UTCDateTimeAttribute(null=True)


class CampaignWaveModel(Unbound):
    """A wave's counters (``part="stats"``, added to by ADD; its ``called`` on ``part="calls"``, added
    to only by first-outcome transactions), its shards' plan cursors (``part="shard#NN"``) and, under
    ``f"{campaign_id}#rate"``, the campaign's token bucket (``part="bucket"``)."""

    class Meta(Unbound.Meta):
        table_name = "campaign-waves"

    campaign_wave = UnicodeAttribute(hash_key=True)
    part = UnicodeAttribute(range_key=True)
    # stats
    targeted = NumberAttribute(null=True)
    sent = NumberAttribute(null=True)
    failed = NumberAttribute(null=True)
    called = NumberAttribute(null=True)
    registered = NumberAttribute(null=True)
    deferred = NumberAttribute(null=True)
    skipped_registered = NumberAttribute(null=True)
    skipped_not_in_service = NumberAttribute(null=True)
    skipped_opted_out = NumberAttribute(null=True)
    skipped_no_phone = NumberAttribute(null=True)
    skipped_superseded = NumberAttribute(null=True)
    skipped_stopped = NumberAttribute(null=True)
    skipped_messaged_today = NumberAttribute(null=True)
    # shard#NN
    cursor = UnicodeAttribute(null=True)
    done = BooleanAttribute(null=True)
    # bucket
    tokens = NumberAttribute(null=True)
    refilled_at = NumberAttribute(null=True)  # epoch seconds (float)
    updated_at = UTCDateTimeAttribute(null=True)
    version = NumberAttribute(null=True)  # the bucket's writes are conditional on the version read


class CampaignOptOutModel(Unbound):
    """A phone (keyed hash) that asked for no more campaign messages: the opt-out in force (the first of
    a run kept), the latest opt-in, and the newest changes in ``history``. An opt-in keeps the item.

    The same table holds, under ``reply#<digest>``, each reply callback handled lately: only its key and
    ``expires_epoch`` (TTL), so that the same signed callback again changes nothing."""

    class Meta(Unbound.Meta):
        table_name = "campaign-opt-outs"

    phone_hash = UnicodeAttribute(hash_key=True)
    at = UTCDateTimeAttribute()  # the latest opt-out (in force while ``opted_out``)
    via = UnicodeAttribute()  # "reply" | "link"
    campaign_id = UnicodeAttribute(null=True)
    #: False once the owner opted in again (None: an item written before opt-ins were kept: opted out).
    opted_out = BooleanAttribute(null=True)
    #: The latest opt-in: a reply not later than it opts nothing out.
    opted_in_at = UTCDateTimeAttribute(null=True)
    #: The newest opt-outs and opt-ins (``campaigns.ports.HISTORY_KEEP``), oldest first (JSON: change,
    #: at, via).
    history = ListAttribute[str](of=UnicodeAttribute, null=True)  # type: ignore[arg-type]
    #: TTL of a ``reply#…`` item (epoch seconds); a phone's item has none and never expires.
    expires_epoch = NumberAttribute(null=True)


class CampaignCallModel(Unbound):
    """The call list: a card a campaign message could not reach, per campaign and wave."""

    class Meta(Unbound.Meta):
        table_name = "campaign-calls"

    campaign_id = UnicodeAttribute(hash_key=True)
    call_key = UnicodeAttribute(range_key=True)  # f"{wave:02d}#{iccid}"
    wave = NumberAttribute()
    iccid = UnicodeAttribute()
    vin = UnicodeAttribute()
    reason = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    contact_phone = UnicodeAttribute(null=True)  # sealed
    outcome = UnicodeAttribute(null=True)
    outcome_at = UTCDateTimeAttribute(null=True)
    outcome_by = UnicodeAttribute(null=True)
    note = UnicodeAttribute(null=True)
    #: Every outcome recorded, oldest first (JSON: outcome, at, by, note): the latest is also above.
    outcomes = ListAttribute[str](of=UnicodeAttribute, null=True)  # type: ignore[arg-type]


CAMPAIGN_TABLES: tuple[TableSpec, ...] = (
    TableSpec("campaigns", CampaignModel),
    TableSpec("campaign-sends", CampaignSendModel),
    TableSpec("campaign-waves", CampaignWaveModel),
    TableSpec("campaign-opt-outs", CampaignOptOutModel, ttl_attribute="expires_epoch"),
    TableSpec("campaign-calls", CampaignCallModel),
)
