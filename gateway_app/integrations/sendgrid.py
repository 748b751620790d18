"""SendGrid v3 mail send: 202 Accepted with the message id in ``X-Message-Id``."""
from .http import ProviderClient


class SendgridClient(ProviderClient):
    service = "sendgrid"
    # mail/send has no idempotency key: a retried POST could send the email twice
    retry_methods = frozenset({"GET"})

    def send(self, to, subject, text, from_email, category=None, html=None, custom_args=None):
        """Return the ``X-Message-Id`` SendGrid assigned."""
        content = [{"type": "text/plain", "value": text}]
        if html:
            content.append({"type": "text/html", "value": html})
        body = {"personalizations": [{"to": [{"email": address} for address in to]}],
                "from": {"email": from_email}, "subject": subject, "content": content}
        if category:
            body["categories"] = [category]
        if custom_args:
            body["custom_args"] = {k: str(v) for k, v in custom_args.items()}
        response = self.request("POST", "/v3/mail/send", json=body)
        return response.headers.get("X-Message-Id")
