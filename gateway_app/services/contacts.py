"""Contact details as stored: phone numbers in E.164, e-mail addresses lower-cased."""
import phonenumbers

DEFAULT_REGION = "US"
SUPPORTED_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)


class InvalidPhoneNumber(ValueError):
    pass


def normalise_phone(raw, region=DEFAULT_REGION):
    """``raw`` as E.164 (``+15551234567``); a number without a country code is read in ``region``."""
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"Not a phone number: {exc}.") from None
    # is_possible accepts numbers the numbering plan has not assigned yet (new ranges,
    # test numbers such as 555-01xx); is_valid would reject numbers real callers have.
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidPhoneNumber("Not a possible phone number for its country.")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def phone_or_none(raw, region=DEFAULT_REGION):
    """E.164 when ``raw`` reads as a phone number, otherwise None (free-text search)."""
    try:
        return normalise_phone(raw, region)
    except InvalidPhoneNumber:
        return None


def normalise_email(email):
    return email.strip().lower()
