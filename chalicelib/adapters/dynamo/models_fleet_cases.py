"""The ``fleet-cases`` table: one review case per fleet batch (keyed by the batch id), with the task
token the workflow waits on sealed under a KMS data key of its own (a token is a bearer secret); and
``staff-affiliations``: the enterprises each member of staff is affiliated with (利益冲突)."""

from __future__ import annotations

from pynamodb.attributes import (
    BinaryAttribute,
    BooleanAttribute,
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex

from chalicelib.adapters.dynamo.base import TableSpec, Unbound


class FleetCasesByStatus(GlobalSecondaryIndex["FleetCaseModel"]):  # type: ignore[no-untyped-call]
    """The queue: cases by status, earliest deadline (else opening) first."""

    class Meta:
        index_name = "by-status"
        projection = AllProjection()

    status = UnicodeAttribute(hash_key=True)
    queue_at = UTCDateTimeAttribute(range_key=True)


class FleetCaseModel(Unbound):
    """单位批次审核案件: checks and decisions as JSON texts (ids, codes and verdicts: nothing personal
    but a decision's note, which stays on the case and goes to the evidence sealed)."""

    class Meta(Unbound.Meta):
        table_name = "fleet-cases"

    batch_id = UnicodeAttribute(hash_key=True)
    status = UnicodeAttribute()
    queue_at = UTCDateTimeAttribute()
    uscc = UnicodeAttribute()
    company_name = UnicodeAttribute()
    kind = UnicodeAttribute()
    vehicles = NumberAttribute()
    round = NumberAttribute()
    outcome = UnicodeAttribute()
    opened_at = UTCDateTimeAttribute()
    submitted_at = UTCDateTimeAttribute(null=True)
    remind_at = UTCDateTimeAttribute(null=True)
    deadline_at = UTCDateTimeAttribute(null=True)
    checks = UnicodeAttribute()  # JSON list
    stage = UnicodeAttribute(null=True)
    escalated = BooleanAttribute(default=False)
    reminded = BooleanAttribute(default=False)
    first_approver = UnicodeAttribute(null=True)
    decisions = ListAttribute[str](of=UnicodeAttribute, null=True)  # type: ignore[arg-type]
    flow_id = UnicodeAttribute(null=True)
    execution_arn = UnicodeAttribute(null=True)
    updated_at = UTCDateTimeAttribute()
    token_id = UnicodeAttribute(null=True)
    token_task = UnicodeAttribute(null=True)
    token_stage = UnicodeAttribute(null=True)
    token_stored_at = UTCDateTimeAttribute(null=True)
    token_data_key = BinaryAttribute(legacy_encoding=False, null=True)
    token_enc = BinaryAttribute(legacy_encoding=False, null=True)
    token_digest = UnicodeAttribute(null=True)
    #: Digests of the tokens held so far (a task message delivered twice is held once).
    seen_tokens = ListAttribute[str](of=UnicodeAttribute, null=True)  # type: ignore[arg-type]

    by_status = FleetCasesByStatus()


class StaffAffiliationModel(Unbound):
    """The enterprises (USCCs) a member of staff may not review, by staff subject."""

    class Meta(Unbound.Meta):
        table_name = "staff-affiliations"

    subject = UnicodeAttribute(hash_key=True)
    usccs = ListAttribute[str](of=UnicodeAttribute, null=True)  # type: ignore[arg-type]
    updated_by = UnicodeAttribute()
    updated_at = UTCDateTimeAttribute()


FLEET_CASE_TABLES: tuple[TableSpec, ...] = (
    TableSpec("fleet-cases", FleetCaseModel),
    TableSpec("staff-affiliations", StaffAffiliationModel),
)
