"""`failed_credit_orders_sensor`: watches `orders` for FAILED CREDIT orders whose debit is not
reversed yet and starts `failed_order_reversal_job` (every minute; the run reverses all of them
set-based; the run key changes only when a new one appears, and the reversal itself is unique
per debit in the database, so an extra run does nothing)."""

import dagster as dg

from ...db.credit.recovery import unreversed_failed_debits
from ...kill_switch import automation_paused
from ...resources.database import DatabaseResource
from .common import ACTOR_TAG
from .jobs import failed_order_reversal_job


@dg.sensor(
    name="failed_credit_orders_sensor",
    job=failed_order_reversal_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts the reversal of failed CREDIT orders' debits (orders.status = FAILED).",
)
def failed_credit_orders_sensor(context: dg.SensorEvaluationContext, database: DatabaseResource):
    paused = automation_paused(database)
    if paused is not None:
        return paused
    with database.connect() as conn:
        count, highest = unreversed_failed_debits(conn)
    if not count:
        return dg.SkipReason("no failed CREDIT order waits for its reversal")
    return dg.RunRequest(
        run_key=f"failed_order_reversal:{highest}:{count}",
        tags={ACTOR_TAG: "sensor:failed_credit_orders_sensor"},
    )


CREDIT_SENSORS = [failed_credit_orders_sensor]
