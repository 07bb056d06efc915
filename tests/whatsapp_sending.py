"""Send through the outbox with a resource's client, as a workflow step does."""

from lending_pipelines.resources.whatsapp import WhatsAppResource
from lending_pipelines.workflows.messaging import send_whatsapp_once


def send_once(resource: WhatsAppResource, *args, **kwargs):
    with resource.get_client() as client:
        return send_whatsapp_once(client, *args, **kwargs)
