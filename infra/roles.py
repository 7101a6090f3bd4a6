"""One IAM role per function of a stage, each with exactly the calls its code paths make.

``FUNCTION_ACCESS`` is the declaration: for each Chalice function (by its logical id in ``chalice package``'s
output, the ``@app`` name in CamelCase; ``APIHandler`` is the API), what it calls: which tables (and which
it scans), which keys (the personal-data key that seals fields and encrypts the tables and the documents
bucket; the hashing key of the lookups), which secrets, which S3 actions on the documents bucket, which
queues it sends to and which one its event source mapping consumes, SMS, the fleet workflow, the campaign
schedules, the engines function and Rekognition. The accesses were read from the handlers' code paths
(``app.py``, ``chalicelib/events/*``, the factories of ``chalicelib.core.deps`` they call). The stack makes
one role per entry (``<prefix>-<stage>-<LogicalId>``) and overrides each Chalice function's ``Role`` with
its own (Chalice's own ``iam_role_arn`` of the stage config is the API's role and only a default); a
function without an entry is refused at synthesis, and so is a stage config whose ``lambda_functions``
name a role of their own (``stage_role_overrides``): the declaration is the only place a role is chosen.

The key policies (``infra.stack``) name these roles by ARN: a role's name is fixed so that a key's policy
can name it without waiting for the role (the role's policy names the key: the other order would be a
cycle).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_cdk import Aws
from aws_cdk import aws_iam as iam

from chalicelib.adapters.dynamo.models import TABLES
from chalicelib.core import resources
from chalicelib.core.resources import (
    CAMPAIGN_SENDS_QUEUE_ID,
    CAMPAIGN_WAVES_QUEUE_ID,
    FLEET_TASKS_QUEUE_ID,
    OUTBOX_DEAD_LETTER_QUEUE_ID,
    OUTBOX_QUEUE_ID,
    TOKEN_SECRET,
)

if TYPE_CHECKING:
    from infra.stack import ChekaStack

API_FUNCTION = "APIHandler"

#: Every operator's key secret (``operator-<operator>`` declarations).
OPERATOR_SECRETS = "operator-*"

#: The outbox and the card bookkeeping it commits with (``adapters.dynamo.outbox``).
OUTBOX_TABLES = ("outbox", "callbacks-seen", "card-lifecycle", "cards-per-id", "cards", "card-history")
#: The cards' inventory (``adapters.dynamo.inventory``).
INVENTORY_TABLES = ("vehicles", "cards", "card-history", "msisdns")
#: Backfill campaigns: campaigns, their ledger and buckets, opt-outs and the call list.
CAMPAIGN_TABLES = ("campaigns", "campaign-sends", "campaign-waves", "campaign-opt-outs", "campaign-calls")
#: A registration from flow to operator answer: flows and their evidence, parties, registrations and
#: their pushes, SMS codes, the face index, retention holds, spot checks, and the campaigns' attribution
#: of a registration an operator confirmed (``cards.lifecycle``, ``campaigns.attribution``).
REGISTRATION_TABLES = (
    *OUTBOX_TABLES,
    *INVENTORY_TABLES,
    "parties",
    "evidence",
    "flows",
    "attempts",
    "liveness-sessions",
    "review-cases",
    "registrations",
    "registration-pushes",
    "sms-codes",
    "sms-sends",
    "face-templates",
    "retention",
    "retention-purges",
    "spot-checks",
    "campaigns",
    "campaign-sends",
    "campaign-waves",
)
#: Sign-in state no background job touches.
SIGN_IN_TABLES = ("sessions", "login-challenges", "staff-revocations")

#: S3 actions on the documents bucket's objects.
READ = ("s3:GetObject",)
WRITE = ("s3:GetObject", "s3:PutObject", "s3:DeleteObject")
#: A purge removes every version of a photo (the bucket is versioned).
PURGE = ("s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion")

#: The workflow calls: start and read executions, complete task tokens.
WORKFLOW_START = "start"
WORKFLOW_READ = "read"
WORKFLOW_TOKENS = "tokens"

#: Receiving from a queue (its event source mapping) and putting a message back later.
CONSUME_ACTIONS = (
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
)
SEND_ACTIONS = ("sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl")


def _all_tables() -> tuple[str, ...]:
    return tuple(spec.short_name for spec in TABLES)


def _all_but(*excluded: tuple[str, ...]) -> tuple[str, ...]:
    dropped = {name for group in excluded for name in group}
    return tuple(name for name in _all_tables() if name not in dropped)


@dataclass(frozen=True)
class FunctionAccess:
    """What one function calls (module docstring). Empty means none."""

    purpose: str
    tables: tuple[str, ...] = ()
    scanned: tuple[str, ...] = ()
    pii_key: bool = False
    hash_key: bool = False
    secrets: tuple[str, ...] = ()
    documents: tuple[str, ...] = ()
    #: Lists the bucket's objects and versions (a purge deletes every version).
    list_documents: bool = False
    sends_to: tuple[str, ...] = ()
    consumes: tuple[str, ...] = ()
    sms: bool = False
    workflow: tuple[str, ...] = ()
    schedules: bool = False
    engines: bool = False
    #: Secrets it rotates (``infra.rotation``: describe, read, write and relabel their versions).
    rotates: tuple[str, ...] = ()


#: The declaration (module docstring), by the functions' logical ids.
FUNCTION_ACCESS: Mapping[str, FunctionAccess] = {
    API_FUNCTION: FunctionAccess(
        "the API: every route",
        tables=_all_tables(),
        pii_key=True,
        hash_key=True,
        secrets=(
            TOKEN_SECRET,
            OPERATOR_SECRETS,
            resources.AUTHORITY_SECRET,
            resources.SMS_REPLY_SECRET,
        ),
        documents=PURGE,
        list_documents=True,
        sends_to=(OUTBOX_QUEUE_ID, CAMPAIGN_WAVES_QUEUE_ID),
        sms=True,
        workflow=(WORKFLOW_START, WORKFLOW_READ, WORKFLOW_TOKENS),
        schedules=True,
        engines=True,
    ),
    "DispatchOutbox": FunctionAccess(
        "the outbox queue's consumer: pushes to the operators",
        tables=OUTBOX_TABLES,
        pii_key=True,
        secrets=(OPERATOR_SECRETS,),
        sends_to=(OUTBOX_QUEUE_ID, OUTBOX_DEAD_LETTER_QUEUE_ID),
        consumes=(OUTBOX_QUEUE_ID,),
    ),
    "SweepOutbox": FunctionAccess(
        "the outbox sweep: records committed but never queued",
        tables=OUTBOX_TABLES,
        pii_key=True,
        secrets=(OPERATOR_SECRETS,),
        sends_to=(OUTBOX_QUEUE_ID, OUTBOX_DEAD_LETTER_QUEUE_ID),
    ),
    "ReconcilePushes": FunctionAccess(
        "the hourly reconciliation of unanswered pushes and overdue spot checks",
        tables=REGISTRATION_TABLES,
        pii_key=True,
        hash_key=True,
        # a settled push reaches the registration service, which builds the identity authority
        secrets=(OPERATOR_SECRETS, resources.AUTHORITY_SECRET),
        sends_to=(OUTBOX_QUEUE_ID,),
        sms=True,
    ),
    "PurgeRetention": FunctionAccess(
        "the retention purge (article 18): materials past their retention",
        tables=REGISTRATION_TABLES,
        pii_key=True,
        hash_key=True,
        documents=PURGE,
        list_documents=True,
        engines=True,
    ),
    "PurgeAbandoned": FunctionAccess(
        "abandoned flows and registrations deleted, stuck submissions finished",
        tables=REGISTRATION_TABLES,
        # It scans these two tables, which TTL keeps small; nothing else scans a table.
        scanned=("flows", "registrations"),
        pii_key=True,
        hash_key=True,
        # the registration service it runs builds the identity authority (its credentials' secret)
        secrets=(resources.AUTHORITY_SECRET,),
        documents=PURGE,
        list_documents=True,
        sends_to=(OUTBOX_QUEUE_ID,),
        sms=True,
        engines=True,
    ),
    "RunFleetTasks": FunctionAccess(
        "the fleet review workflow's tasks: automatic checks, apply, notices",
        tables=_all_but(CAMPAIGN_TABLES, SIGN_IN_TABLES),
        pii_key=True,
        hash_key=True,
        secrets=(resources.AUTHORITY_SECRET,),
        documents=WRITE,
        sends_to=(OUTBOX_QUEUE_ID,),
        consumes=(FLEET_TASKS_QUEUE_ID,),
        sms=True,
        workflow=(WORKFLOW_READ, WORKFLOW_TOKENS),
        engines=True,
    ),
    "RunCampaignWaves": FunctionAccess(
        "backfill waves started and their shards planned",
        tables=("cards", "campaigns", "campaign-sends", "campaign-waves"),
        sends_to=(CAMPAIGN_WAVES_QUEUE_ID, CAMPAIGN_SENDS_QUEUE_ID),
        consumes=(CAMPAIGN_WAVES_QUEUE_ID,),
        schedules=True,
    ),
    "SendCampaignMessages": FunctionAccess(
        "backfill SMS sent at the campaign's rate",
        tables=("cards", *CAMPAIGN_TABLES),
        pii_key=True,
        sends_to=(CAMPAIGN_SENDS_QUEUE_ID,),
        consumes=(CAMPAIGN_SENDS_QUEUE_ID,),
        sms=True,
    ),
    "RotateSecrets": FunctionAccess(
        "Secrets Manager's rotation of the token signing key, and the operator keys' hand-overs",
        rotates=(TOKEN_SECRET, OPERATOR_SECRETS),
    ),
}


def role_name(stack: ChekaStack, logical_id: str) -> str:
    """``cheka-prod-SendCampaignMessages`` (at most 64 characters)."""
    from infra.stack import function_name_prefix

    name = function_name_prefix(stack.settings) + logical_id
    if len(name) > 64:
        raise ValueError(f"role name {name!r} is longer than IAM allows")
    return name


def role_arn(stack: ChekaStack, logical_id: str) -> str:
    """The role's ARN from its fixed name (no reference to the role: see the module docstring)."""
    return f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/{role_name(stack, logical_id)}"


def stage_role_overrides(stage_config: Mapping[str, Any]) -> list[str]:
    """Functions the stage config gives a role of their own (``lambda_functions.<name>.iam_role_arn`` or
    ``manage_iam_role``): Chalice would prefer it to the declaration's, so a stage may not."""
    functions = stage_config.get("lambda_functions", {})
    return sorted(
        name
        for name, section in (functions.items() if isinstance(functions, dict) else [])
        if isinstance(section, dict) and ({"iam_role_arn", "manage_iam_role"} & set(section))
    )


def _tables_resources(stack: ChekaStack, tables: tuple[str, ...]) -> list[str]:
    """The tables and each of their indexes: no wildcard."""
    from infra.tables import model_schema

    arns: list[str] = []
    for spec in TABLES:
        if spec.short_name not in tables:
            continue
        table_arn = stack.tables[spec.short_name].table_arn
        schema = model_schema(spec)
        arns.append(table_arn)
        arns.extend(
            f"{table_arn}/index/{index.name}" for index in (*schema.global_indexes, *schema.local_indexes)
        )
    return arns


def _secret_arns(stack: ChekaStack, secrets: tuple[str, ...]) -> dict[str, list[str]]:
    """Sid -> ARNs of the secrets named (an undeclared optional secret is skipped)."""
    sids = {
        TOKEN_SECRET: "TokenSigningKey",
        resources.AUTHORITY_SECRET: "IdentityAuthorityKeys",
        resources.SMS_REPLY_SECRET: "SmsReplyKey",
    }
    found: dict[str, list[str]] = {}
    for secret in secrets:
        if secret == OPERATOR_SECRETS:
            if stack.operator_secrets:
                found["OperatorKeys"] = [s.secret_arn for s in stack.operator_secrets]
        elif secret in stack.secrets:
            found[sids[secret]] = [stack.secrets[secret].secret_arn]
    return found


def statements(stack: ChekaStack, logical_id: str, access: FunctionAccess) -> list[iam.PolicyStatement]:
    """The role's statements for ``access``."""
    from infra import campaigns, workflows
    from infra.stack import DYNAMODB_ITEM_ACTIONS, XRAY_ACTIONS, function_name_prefix

    log_group = (
        f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:"
        f"/aws/lambda/{function_name_prefix(stack.settings)}{logical_id}"
    )
    found = [
        iam.PolicyStatement(
            sid="Logs", actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[f"{log_group}:*"]
        ),
        # X-Ray's write actions have no resource-level permissions: "*" is the only valid resource.
        iam.PolicyStatement(sid="XRay", actions=list(XRAY_ACTIONS), resources=["*"]),
    ]
    if access.tables:
        found.append(
            iam.PolicyStatement(
                sid="Tables",
                actions=list(DYNAMODB_ITEM_ACTIONS),
                resources=_tables_resources(stack, access.tables),
            )
        )
    if access.scanned:
        found.append(
            iam.PolicyStatement(
                sid="HousekeepingScan",
                actions=["dynamodb:Scan"],
                resources=[stack.tables[short].table_arn for short in access.scanned],
            )
        )
    if access.documents:
        found.append(
            iam.PolicyStatement(
                sid="DocumentObjects",
                actions=list(access.documents),
                resources=[stack.bucket.arn_for_objects("*")],
            )
        )
    if access.list_documents:
        found.append(
            iam.PolicyStatement(
                sid="DocumentBucket",
                actions=["s3:ListBucket", "s3:ListBucketVersions"],
                resources=[stack.bucket.bucket_arn],
            )
        )
    # The documents bucket is encrypted under the personal-data key: reading or writing an object
    # needs it as much as sealing a field does.
    if access.pii_key or access.documents:
        found.append(
            iam.PolicyStatement(
                sid="PiiKey",
                actions=["kms:GenerateDataKey", "kms:Decrypt", "kms:Encrypt", "kms:DescribeKey"],
                resources=[stack.pii_key.key_arn],
            )
        )
    if access.hash_key:
        found.append(
            iam.PolicyStatement(
                sid="PiiHashKey",
                actions=["kms:GenerateMac", "kms:VerifyMac", "kms:DescribeKey"],
                resources=[stack.hash_key.key_arn],
            )
        )
    if access.rotates:
        from infra.rotation import HAND_OVER_ACTIONS, ROTATION_ACTIONS

        # operator keys are made current at a hand-over, never generated (``infra.rotation``)
        found += [
            iam.PolicyStatement(
                sid=f"Rotate{sid}",
                actions=list(HAND_OVER_ACTIONS if sid == "OperatorKeys" else ROTATION_ACTIONS),
                resources=arns,
            )
            for sid, arns in _secret_arns(stack, access.rotates).items()
        ]
    for sid, arns in _secret_arns(stack, access.secrets).items():
        actions = ["secretsmanager:GetSecretValue"]
        if sid == "OperatorKeys":  # the key source reads the previous version during a rotation
            actions.append("secretsmanager:DescribeSecret")
        found.append(iam.PolicyStatement(sid=sid, actions=actions, resources=arns))
    if access.sms:
        # SMS codes go straight to a phone number: such a publish has no topic ARN to scope to.
        found.append(iam.PolicyStatement(sid="Sms", actions=["sns:Publish"], resources=["*"]))
    sends = [q for q in access.sends_to if q not in access.consumes]
    if sends:
        found.append(
            iam.PolicyStatement(
                sid="QueueSends",
                actions=list(SEND_ACTIONS),
                resources=[stack.queues[q].queue_arn for q in sends],
            )
        )
    for queue_id in access.consumes:
        actions = list(CONSUME_ACTIONS)
        if queue_id in access.sends_to:
            actions.insert(0, "sqs:SendMessage")
        sid = "FleetTasksQueue" if queue_id == FLEET_TASKS_QUEUE_ID else "ConsumedQueue"
        found.append(
            iam.PolicyStatement(sid=sid, actions=actions, resources=[stack.queues[queue_id].queue_arn])
        )
    if WORKFLOW_START in access.workflow:
        found.append(
            iam.PolicyStatement(
                sid="FleetWorkflowStartAndTokens",
                actions=[*workflows.START_ACTIONS, *workflows.TOKEN_ACTIONS],
                resources=[workflows.state_machine_arn(stack)],
            )
        )
    elif WORKFLOW_TOKENS in access.workflow:
        found.append(
            iam.PolicyStatement(
                sid="FleetWorkflowTokens",
                actions=list(workflows.TOKEN_ACTIONS),
                resources=[workflows.state_machine_arn(stack)],
            )
        )
    if WORKFLOW_READ in access.workflow:
        found.append(
            iam.PolicyStatement(
                sid="FleetWorkflowExecutions",
                actions=list(workflows.READ_ACTIONS),
                resources=[workflows.executions_arn(stack)],
            )
        )
    if access.schedules:
        found += campaigns.schedule_statements(stack)
    if access.engines:
        found += stack.rekognition_statements()
    return found


def add_function_roles(stack: ChekaStack) -> dict[str, iam.Role]:
    """A role per declared function (the engines function's is ``infra.engines``')."""
    return {
        logical_id: iam.Role(
            stack,
            f"{logical_id}Role",
            role_name=role_name(stack, logical_id),
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"cheka {stack.settings.stage} {logical_id}: {access.purpose} (least privilege)",
            # Inline: the function references the role, so it never starts without the policy.
            inline_policies={
                "cheka-runtime": iam.PolicyDocument(statements=statements(stack, logical_id, access))
            },
        )
        for logical_id, access in FUNCTION_ACCESS.items()
    }


def roles_using(needs: str) -> list[str]:
    """Logical ids of the declared functions that need ``needs`` (``pii_key``, ``hash_key``)."""
    return [
        logical_id
        for logical_id, access in FUNCTION_ACCESS.items()
        if getattr(access, needs) or (needs == "pii_key" and access.documents)
    ]
