"""Which provider accounts a company may link (settings ``integrations``).

A linked account routes that provider's signed webhooks to the company, so a claim must
be the company's own where the provider can tell:

- a Stripe customer is linked only if its metadata names the company
  (``gateway_company_id``), which only the company's owner (or the gateway, creating the
  customer) can set in Stripe: a Stripe event may change a tier;
- a Retell agent and a Cal.com event type carry no owner the provider reports: they are
  trusted as claimed, one company per account, the first to link it (docs/integrations.md).
"""
from ..integrations import ProviderRejected, client

OWNER_METADATA = "gateway_company_id"


class NotOwned(Exception):
    """A claimed account is not the company's: ``errors`` maps each field to its reasons."""

    def __init__(self, errors):
        super().__init__(str(errors))
        self.errors = errors


def check_claims(company_id, links):
    """Refuse (NotOwned) a newly linked account the provider says is not the company's.
    ``links``: the integration fields being set, to a value or None (unlinked)."""
    customer = links.get("stripe_customer_id")
    if customer is not None:
        reason = stripe_customer_refusal(company_id, customer)
        if reason:
            raise NotOwned({"stripe_customer_id": [reason]})


def stripe_customer_refusal(company_id, customer_id):
    """Why ``customer_id`` may not be linked to the company, or None."""
    try:
        customer = client("stripe").request("GET", f"/customers/{customer_id}").json()
    except ProviderRejected as rejected:
        if rejected.status == 404:
            return f"Stripe has no customer {customer_id}."
        raise
    if customer.get("deleted"):
        return f"The Stripe customer {customer_id} is deleted."
    owner = (customer.get("metadata") or {}).get(OWNER_METADATA)
    if owner != str(company_id):
        return (f"The Stripe customer {customer_id} is not this company's: its metadata "
                f"{OWNER_METADATA} must be {company_id}.")
    return None
