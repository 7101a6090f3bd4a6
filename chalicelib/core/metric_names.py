"""Every metric the platform emits (CloudWatch namespace ``Settings.metrics_namespace``), named once.

Code emits them through ``chalicelib.core.observability.emit`` (one EMF line each, with the dimensions
given beside ``service``); infra's dashboard and alarms read the same names. Dimension values are codes
(step names, reason codes, operators, outcomes), never personal data.
"""

from __future__ import annotations

from enum import StrEnum


class Metric(StrEnum):
    # The owner's registration funnel (dimensions: ``step``; failures add ``reason``, the error code).
    STEP_ENTERED = "StepEntered"
    STEP_PASSED = "StepPassed"
    STEP_FAILED = "StepFailed"
    #: A face attempt (liveness + ID-portrait match) was counted (dimension ``result``: passed/failed).
    FACE_ATTEMPT = "FaceAttempt"
    #: A liveness verdict (dimension ``result``: live/not_live/retry).
    LIVENESS_RESULT = "LivenessResult"
    #: A review case was opened (dimension ``reason``).
    REVIEW_OPENED = "ReviewOpened"
    #: A fleet case (单位批次审核) passed its reminder time undecided (dimension ``kind``: the batch's).
    FLEET_CASE_REMINDER = "FleetCaseReminder"
    #: A fleet case passed its deadline and went to the review leads (dimension ``kind``).
    FLEET_CASE_ESCALATED = "FleetCaseEscalated"
    #: Cards of an approved fleet batch pushed to the outbox by one chunk (value: cards; dimension ``kind``).
    FLEET_CARDS_PUSHED = "FleetCardsPushed"
    #: An enterprise told of its fleet batch's outcome (dimensions ``outcome``, ``kind``).
    FLEET_BATCH_NOTIFIED = "FleetBatchNotified"
    #: An operator's spot check (抽查, 第十条) opened a case for the OEM (dimension ``operator``).
    SPOT_CHECK_OPENED = "SpotCheckOpened"
    #: A spot check was answered (dimensions ``verdict``, ``late``); the answer goes to the outbox.
    SPOT_CHECK_ANSWERED = "SpotCheckAnswered"
    #: A spot check answered after its deadline (still sent, marked late).
    SPOT_CHECK_OVERDUE = "SpotCheckOverdue"
    #: Spot checks still open past their deadline (hourly gauge, alarmed: the operator waits).
    SPOT_CHECKS_OVERDUE_OPEN = "SpotChecksOverdueOpen"
    #: Holders whose materials the retention purge (第十八条) removed in a run (dimension ``outcome``:
    #: purged / kept_in_service).
    RETENTION_PURGED = "RetentionPurged"
    #: An engine (OCR, faces, liveness) could not answer in time (dimension ``engine``); the person retries.
    ENGINE_UNAVAILABLE = "EngineUnavailable"
    #: A record's personal data was read in clear and recorded in the read log (dimension
    #: ``record_kind``: flow / card / complaint / document_file).
    PERSONAL_DATA_READ = "PersonalDataRead"

    # SMS codes and their abuse limits (chalicelib.sms.limits).
    #: One per code sent (dimension ``purpose``).
    SMS_CODES_SENT = "SmsCodesSent"
    #: A code send refused by a limit (dimension ``reason``: phone, ip, device, budget, captcha).
    SMS_SEND_REFUSED = "SmsSendRefused"
    #: One per send refused while the platform's hourly budget is spent (alarmed: pumping or a surge).
    SMS_BUDGET_EXHAUSTED = "SmsBudgetExhausted"

    # The operator push pipeline (dimension ``operator``).
    PUSH_SENT = "PushSent"
    PUSH_ACCEPTED = "PushAccepted"
    PUSH_REFUSED = "PushRefused"
    PUSH_DEAD = "PushDead"
    #: The operator answered with an error or not at all (a retry follows).
    OPERATOR_ERROR = "OperatorError"
    #: A push waits because its operator has no URL or keys on this stage (alarmed: operations must act).
    OPERATOR_NOT_CONFIGURED = "OperatorNotConfigured"
    #: A signed callback from the operator (dimension ``outcome``: applied/duplicate/refused).
    CALLBACK_RECEIVED = "CallbackReceived"
    #: Age in minutes of the oldest push still waiting for the operator's answer (no dimension but service).
    OLDEST_PENDING_PUSH_MINUTES = "OldestPendingPushMinutes"
    #: Pushes the scheduled reconciliation could not repair (asked the operator, still unsettled).
    RECONCILIATION_DRIFT = "ReconciliationDrift"

    # Backfill campaign waves (补登记; dimension ``campaign``, the campaign's id: a code, no personal data).
    #: Targets a wave's planner queued for sending (value: targets).
    CAMPAIGN_TARGETS_PLANNED = "CampaignTargetsPlanned"
    #: Campaign SMS accepted by the provider.
    CAMPAIGN_MESSAGES_SENT = "CampaignMessagesSent"
    #: Targets a wave did not message (dimension ``reason``: a ``SkipReason``).
    CAMPAIGN_MESSAGES_SKIPPED = "CampaignMessagesSkipped"
    #: Campaign SMS the provider refused on every try (the card goes to the call list).
    CAMPAIGN_SEND_FAILURES = "CampaignSendFailures"
    #: Send messages put back for quiet hours or a paused campaign (value: targets).
    CAMPAIGN_SENDS_DEFERRED = "CampaignSendsDeferred"
    #: Registrations attributed to a campaign message within its window.
    CAMPAIGN_REGISTRATIONS_ATTRIBUTED = "CampaignRegistrationsAttributed"


#: Metrics alarmed on with the ``service`` dimension alone (emitted without further dimensions as well).
ALARMED = (
    Metric.PUSH_DEAD,
    Metric.OPERATOR_ERROR,
    Metric.OPERATOR_NOT_CONFIGURED,
    Metric.OLDEST_PENDING_PUSH_MINUTES,
    Metric.ENGINE_UNAVAILABLE,
    Metric.RECONCILIATION_DRIFT,
    Metric.SPOT_CHECKS_OVERDUE_OPEN,
    Metric.CAMPAIGN_SEND_FAILURES,
    Metric.SMS_BUDGET_EXHAUSTED,
)


#: The ``step`` dimension of the funnel metrics (``STEP_*``), in the order a registration meets them: the
#: routes declaring ``step=`` in ``chalicelib.api`` emit them (infra's dashboard reads this order).
FUNNEL_STEPS = (
    "start",
    "confirm_vehicle",
    "verify_phone",
    "possession",
    "transfer",  # 过户: the buyer of a car registered to someone else goes on as a transfer
    "delegation",
    "delegation_confirm",
    "identity",
    "biometric_consent",  # before the ID photos: the front's portrait is face processing
    "documents",
    "ocr",
    "authority",
    "face",
    "consents",
    "submit",
)
#: The de-registration's own steps (its identity, documents and face steps are the flow's, above).
DEREGISTRATION_STEPS = ("deregistration_start", "deregistration_phone", "deregistration_submit")
