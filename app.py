"""cheka: real-name registration of vehicle IoT cards (车联网卡实名登记). Wiring only."""

import os
from typing import Any

from chalice.app import Chalice, Rate

from chalicelib.api import (
    accounts,
    audit,
    auth,
    campaign_reach,
    campaigns,
    complaints,
    console,
    dealers,
    enterprise,
    enterprise_cards,
    entrances,
    fleet,
    fleet_cases,
    h5,
    in_service,
    inventory,
    lifecycle,
    operator,
    realname,
    registration,
    review,
    staff,
    system,
    tools,
    verification,
)
from chalicelib.api.middleware import wire
from chalicelib.events import outbox

if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    # In a Lambda execution environment the stage's settings are checked at init: a stage naming an
    # engine it cannot run fails to start, with the reason in its log, rather than answering 500 later.
    from chalicelib.core.settings import get_settings
    from chalicelib.core.stages import refuse_bad_configuration

    refuse_bad_configuration(get_settings())

# The service logger (powertools, JSON) owns the "cheka" logging name: Chalice adds no plain handler to it.
app = Chalice(app_name="cheka", configure_logs=False)
app.experimental_feature_flags.update(["BLUEPRINTS"])
wire(app)
for blueprint in (
    system.bp,
    tools.bp,
    auth.bp,
    accounts.bp,
    h5.bp,
    inventory.bp,
    in_service.bp,
    campaigns.bp,
    verification.bp,
    review.bp,
    registration.bp,
    lifecycle.bp,
    operator.bp,
    complaints.bp,
    campaign_reach.bp,
    console.bp,
    entrances.bp,
    enterprise.bp,
    enterprise_cards.bp,
    fleet.bp,
    fleet_cases.bp,
    dealers.bp,
    audit.bp,
    staff.bp,
    realname.bp,
):
    app.register_blueprint(blueprint)


@app.lambda_function(name="dispatch_outbox")
def dispatch_outbox(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    """The outbox queue's consumer (event source mapping with ReportBatchItemFailures, in infra)."""
    return outbox.dispatch_outbox(event, context)


@app.lambda_function(name="run_fleet_tasks")
def run_fleet_tasks(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    """The fleet tasks queue's consumer: the fleet review workflow's tasks (event source mapping with
    ReportBatchItemFailures, in infra)."""
    from chalicelib.events.fleet_tasks import dispatch_fleet_tasks

    return dispatch_fleet_tasks(event, context)


@app.lambda_function(name="run_campaign_waves")
def run_campaign_waves(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    """The campaign waves queue's consumer: backfill waves started and their shards planned (event source
    mapping with ReportBatchItemFailures, in infra)."""
    from chalicelib.events.campaigns import handle_wave_messages

    return handle_wave_messages(list(event.get("Records", [])), context)


@app.lambda_function(name="send_campaign_messages")
def send_campaign_messages(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    """The campaign sends queue's consumer: backfill SMS sent at the campaign's rate, quiet hours and
    pauses deferred (event source mapping with ReportBatchItemFailures and a maximum concurrency)."""
    from chalicelib.events.campaigns import handle_send_messages

    return handle_send_messages(list(event.get("Records", [])), context)


@app.lambda_function(name="rotate_secrets")
def rotate_secrets(event: dict[str, Any], context: Any) -> None:
    """Secrets Manager's rotation of the token signing key (its RotationSchedule, in infra), and operator
    keys' hand-overs invoked by hand (docs/supply-chain.md); its own role may touch those secrets only."""
    from chalicelib.events.rotation import handle

    handle(event, context)


@app.schedule(Rate(1, unit=Rate.MINUTES), name="sweep_outbox")
def sweep_outbox(event: Any) -> dict[str, Any]:
    """Records committed but never queued are pushed by this sweep."""
    return outbox.sweep_outbox()


@app.schedule(Rate(1, unit=Rate.HOURS), name="reconcile_pushes")
def reconcile_pushes(event: Any) -> dict[str, Any]:
    """Pushes whose answer never came are settled with their operator; the rest reported as drift."""
    from chalicelib.events.reconcile import reconcile_pushes as run

    return run()


@app.schedule(Rate(1, unit=Rate.DAYS), name="purge_retention")
def purge_retention(event: Any) -> dict[str, Any]:
    """第十八条: the materials of services ended two years ago are purged (a purge record stays)."""
    from chalicelib.core import deps

    report: dict[str, Any] = deps.retention().purge_due().model_dump(mode="json")
    return report


@app.schedule(Rate(15, unit=Rate.MINUTES), name="purge_abandoned")
def purge_abandoned(event: Any) -> dict[str, int]:
    """Registrations and flows abandoned before submission are deleted, with their photos."""
    from chalicelib.core import deps

    return deps.registration_service().purge_abandoned()
