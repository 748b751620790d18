"""Retell AI: bearer key; get-call (v2), list-calls (v3, POST, no transcripts), create-phone-call,
and the download of a call's recording."""
from .http import ProviderClient, SAFE_METHODS


class RetellClient(ProviderClient):
    service = "retell"
    # list-calls is a read sent as POST; create-phone-call always carries idempotency_key
    retry_methods = SAFE_METHODS | {"POST"}

    def get_call(self, call_id):
        return self.request("GET", f"/v2/get-call/{call_id}").json()

    def list_calls(self, filter_criteria=None, limit=50, pagination_key=None, sort_order="descending"):
        body = {"limit": limit, "sort_order": sort_order}
        if filter_criteria:
            body["filter_criteria"] = filter_criteria
        if pagination_key:
            body["pagination_key"] = pagination_key
        return self.request("POST", "/v3/list-calls", json=body).json()

    def create_phone_call(self, from_number, to_number, idempotency_key, agent_id=None,
                          dynamic_variables=None, metadata=None):
        body = {"from_number": from_number, "to_number": to_number,
                "idempotency_key": idempotency_key}
        if agent_id:
            body["override_agent_id"] = agent_id
        if dynamic_variables:
            body["retell_llm_dynamic_variables"] = dynamic_variables
        if metadata:
            body["metadata"] = metadata
        return self.request("POST", "/v2/create-phone-call", json=body).json()

    def download_recording(self, url):
        """The recording at ``url`` (a webhook's ``recording_url``), streamed: the caller
        reads the body in chunks and closes the response. The URL is Retell's storage, not
        its API, and carries its own signature: the API key is not sent to it."""
        return self.request_url("GET", url, stream=True, headers={"Authorization": None})
