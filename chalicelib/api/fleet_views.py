"""The models of the enterprise's fleet batch routes (``chalicelib.api.fleet``), loaded on their first
use: a cold start of the app does not build them."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AwareDatetime, ConfigDict, Field

from chalicelib.api.http import Refusal
from chalicelib.api.models import ApiModel, CaptchaAnswer, PageQuery
from chalicelib.fleet.batches import BatchProgress, DealerChoice, RowOutcome
from chalicelib.fleet.domain import (
    BATCH_STATUS_ZH,
    DOCUMENT_SLOT_ZH,
    MAX_BATCH_VEHICLES,
    STEP_ZH,
    BatchKind,
    BatchStatus,
    FleetBatch,
)
from chalicelib.kernel.personal import mask_phone

KIND_ZH = {BatchKind.REGISTRATION: "实名登记", BatchKind.DEREGISTRATION: "解除登记"}


class FleetCreateBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    kind: BatchKind = Field(description="registration | deregistration")


class FleetVinsBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    vins: list[Annotated[str, Field(max_length=4000)]] = Field(
        min_length=1,
        max_length=2000,
        description="VINs: one per entry, or several in an entry separated by line breaks, commas or spaces",
    )


class FleetCsvBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    csv: str = Field(
        min_length=1,
        max_length=200_000,
        description="The CSV file's text: a header row (a vin column) is optional; else one VIN per line",
    )


class FleetDealerBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    dealer_code: str = Field(min_length=1, max_length=64)


class FleetPhoneBody(CaptchaAnswer):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(min_length=1, max_length=32, description="The responsible person's mobile")


class FleetPhoneCodeBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(min_length=1, max_length=32)
    code: str = Field(min_length=1, max_length=12)


class FleetConsentsBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    texts: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=16)]] = Field(
        description="Text kind → version accepted: custody_agreement, registration_agreement, "
        "responsibility_notice",
        max_length=8,
    )


class FleetSubmitBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    company_name: str = Field(
        min_length=1, max_length=200, description="公司全称, as on the business licence"
    )


class FleetBatchQuery(PageQuery):
    kind: Annotated[
        BatchKind | None,
        Field(description="registration | deregistration (default: both)"),
        Refusal("fleet.kind", "批次类型无效", "Unknown batch kind"),
    ] = None
    status: Annotated[
        BatchStatus | None,
        Field(
            description="draft | submitted | in_review | resubmission_requested | approved | completed | …"
        ),
        Refusal("fleet.status", "批次状态无效", "Unknown batch status"),
    ] = None


class FleetReasonView(ApiModel):
    code: str
    zh: str
    en: str


class FleetVehicleView(ApiModel):
    vin: str
    card_states: list[str] = Field(default_factory=list, description="Once approved: each card's state")


class FleetBatchSummary(ApiModel):
    batch_id: str
    kind: BatchKind
    kind_zh: str
    status: BatchStatus
    status_zh: str
    uscc: str
    company_name: str
    vehicles: int
    round: int
    created_at: AwareDatetime
    updated_at: AwareDatetime
    submitted_at: AwareDatetime | None = None
    cards_total: int
    cards_pushed: int


class FleetBatchView(FleetBatchSummary):
    flow_id: str | None = Field(description="The verification flow of the responsible person and documents")
    step: str | None = Field(description="The next step to do (None: every step done)")
    step_zh: str | None = None
    done: list[str]
    missing: list[str]
    documents: dict[str, bool] = Field(description="Document slot → present")
    documents_zh: dict[str, str]
    vins: list[FleetVehicleView]
    dealer_code: str | None = None
    responsible_phone: str | None = Field(default=None, description="Masked")
    responsible_phone_verified: bool
    responsible_name: str | None = Field(default=None, description="Masked (once submitted)")
    consents: dict[str, str]
    consent_texts: dict[str, str] = Field(description="The texts to accept: kind → current version")
    typed_company_name: str | None = None
    resubmit_documents: list[str]
    reasons: list[FleetReasonView] = Field(description="The reasons of the last decision")
    execution_arn: str | None = None
    max_vehicles: int = MAX_BATCH_VEHICLES


class FleetBatchList(ApiModel):
    items: list[FleetBatchSummary]
    next_cursor: str | None = None


class FleetRowView(ApiModel):
    line: int
    vin: str
    ok: bool
    code: str | None = None
    message_zh: str | None = None
    message_en: str | None = None


class FleetAddedView(ApiModel):
    added: list[str]
    rows: list[FleetRowView]
    vehicles: int = Field(description="Vehicles in the batch now")


class FleetDealerView(ApiModel):
    dealer_code: str
    vehicles: int = Field(description="The batch's vehicles this dealer sold")


class FleetDealerList(ApiModel):
    items: list[FleetDealerView]
    selected: str | None = None


def summary_fields(batch: FleetBatch) -> dict[str, Any]:
    return {
        "batch_id": batch.batch_id,
        "kind": batch.kind,
        "kind_zh": KIND_ZH[batch.kind],
        "status": batch.status,
        "status_zh": BATCH_STATUS_ZH[batch.status],
        "uscc": batch.uscc,
        "company_name": batch.company_name,
        "vehicles": len(batch.vins),
        "round": batch.round,
        "created_at": batch.created_at,
        "updated_at": batch.updated_at,
        "submitted_at": batch.submitted_at,
        "cards_total": batch.cards_total,
        "cards_pushed": batch.cards_pushed,
    }


def summary(batch: FleetBatch) -> FleetBatchSummary:
    return FleetBatchSummary(**summary_fields(batch))


def batch_view(
    progress: BatchProgress,
    *,
    consent_texts: dict[str, str],
    reasons: list[FleetReasonView],
    card_states: dict[str, list[str]] | None = None,
) -> FleetBatchView:
    batch = progress.batch
    states = card_states or {}
    step = progress.step
    return FleetBatchView(
        **summary_fields(batch),
        flow_id=batch.flow_id,
        step=step.value if step else None,
        step_zh=STEP_ZH[step] if step else None,
        done=[s.value for s in progress.done],
        missing=[s.value for s in progress.missing],
        documents={s.value: present for s, present in progress.documents.items()},
        documents_zh={s.value: DOCUMENT_SLOT_ZH[s] for s in progress.documents},
        vins=[FleetVehicleView(vin=v, card_states=states.get(v, [])) for v in batch.vins],
        dealer_code=batch.dealer_code,
        responsible_phone=mask_phone(batch.responsible_phone) if batch.responsible_phone else None,
        responsible_phone_verified=batch.responsible_phone_verified,
        responsible_name=batch.responsible_name_masked,
        consents=dict(batch.consents),
        consent_texts=consent_texts,
        typed_company_name=batch.typed_company_name,
        resubmit_documents=[s.value for s in batch.resubmit_documents],
        reasons=reasons,
        execution_arn=batch.execution_arn,
    )


def row_view(row: RowOutcome) -> FleetRowView:
    err = row.error
    return FleetRowView(
        line=row.line,
        vin=row.vin,
        ok=err is None,
        code=err.code if err else None,
        message_zh=err.message_zh if err else None,
        message_en=err.message_en if err else None,
    )


def dealer_view(choice: DealerChoice) -> FleetDealerView:
    return FleetDealerView(dealer_code=choice.dealer_code, vehicles=choice.vehicles)
