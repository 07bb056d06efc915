"""WhatsApp in the tests: the sandbox's Twilio as a resource, and sending through the outbox with
a resource's client, as a workflow step does."""

from lending_dev.sandbox.twilio import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN
from lending_pipelines.resources.whatsapp import WhatsAppResource
from lending_pipelines.workflows.messaging import send_whatsapp_once


def sandbox_whatsapp(sandbox, **overrides) -> WhatsAppResource:
    """WhatsApp through the sandbox's Twilio with the dev credentials, retrying without waiting."""
    values = {
        "account_sid": DEV_ACCOUNT_SID,
        "auth_token": DEV_AUTH_TOKEN,
        "from_number": "+14155238886",
        "base_url": sandbox.url("twilio"),
        "timeout_seconds": 5,
        "backoff_seconds": 0.01,
        "backoff_cap_seconds": 0.02,
    }
    return WhatsAppResource(**{**values, **overrides})


def send_once(resource: WhatsAppResource, *args, **kwargs):
    with resource.get_client() as client:
        return send_whatsapp_once(client, *args, **kwargs)
