"""Demo data: one company per tier with realistic calls, customers, appointments and billing.

`gateway seed --demo` runs it; benchmarks run it with 100,000 calls for the largest
company. Rows are generated from a seeded random source (the same data every time) and
written with Core executemany in batches: the ORM unit of work is two orders of
magnitude slower at this volume. A company whose owner email already exists is left
untouched, so a second run adds nothing.
"""
import datetime as dt
import random
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import insert, select

from .clock import business_now
from .identity.passwords import hash_password
from .models import (Appointment, Call, Company, Customer, Invoice, Payment, UsageRecord,
                     User)

BATCH_SIZE = 5000
HISTORY_DAYS = 90
DEMO_DOMAIN = "demo.voicegateway.dev"

COMPANIES = {
    # tier: (name, timezone, included minutes, monthly price in cents, area code)
    "free": ("Sunrise Dental Studio", "America/Los_Angeles", 500, 0, "415"),
    "pro": ("Maple Street Plumbing", "America/Chicago", 2000, 9900, "312"),
    "enterprise": ("Northwind Property Group", "America/New_York", 10000, 49900, "212"),
    "unlimited": ("Atlas Health Clinics", "Europe/London", 100000, 199900, "646"),
}
# provider accounts linked as the API requires them to look (blueprints/settings.py), so a
# demo company can be patched back as it is; they name no real account
DEMO_LINKS = {
    "free": ("agent_demo_free", "900001", "cus_DemoFree"),
    "pro": ("agent_demo_pro", "900002", "cus_DemoPro"),
    "enterprise": ("agent_demo_enterprise", "900003", "cus_DemoEnterprise"),
    "unlimited": ("agent_demo_unlimited", "900004", "cus_DemoUnlimited"),
}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SLOT_STEP = 30   # minutes between the start times the demo calendar uses
STAFF_ROLES = ("owner", "admin", "member", "viewer")
STAFF_NAMES = {"owner": "Olivia Owner", "admin": "Adam Admin", "member": "Mia Member",
               "viewer": "Victor Viewer"}

FIRST_NAMES = ("James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William "
               "Barbara Richard Susan Joseph Jessica Thomas Sarah Carlos Karen Daniel Lisa Matthew "
               "Nancy Anthony Betty Mark Sandra Priya Ashley Wei Emily Ahmed Donna Kenji Michelle "
               "Luis Carol Omar Amanda Ravi Melissa Sofia Deborah Noah Laura Aisha Rebecca").split()
LAST_NAMES = ("Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez "
              "Hernandez Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee "
              "Perez Thompson White Harris Sanchez Clark Ramirez Lewis Robinson Walker Young "
              "Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Patel "
              "Kim Chen Okafor Schmidt Rossi").split()
EMAIL_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "hotmail.com")

CALL_STATUS_WEIGHTS = (("answered", 76), ("missed", 10), ("voicemail", 10), ("failed", 4))
OUTCOME_WEIGHTS = (("booked", 30), ("inquiry", 30), ("callback", 12), ("not_interested", 10),
                   ("transferred", 10), ("other", 8))
SENTIMENT_BY_OUTCOME = {
    "booked": (("positive", 75), ("neutral", 22), ("negative", 3)),
    "inquiry": (("positive", 40), ("neutral", 50), ("negative", 10)),
    "callback": (("positive", 25), ("neutral", 60), ("negative", 15)),
    "not_interested": (("positive", 5), ("neutral", 55), ("negative", 40)),
    "transferred": (("positive", 30), ("neutral", 50), ("negative", 20)),
    "other": (("positive", 30), ("neutral", 55), ("negative", 15)),
}
# local hour of day -> relative call volume: mornings and early afternoons peak
HOUR_WEIGHTS = (0, 0, 0, 0, 0, 0, 1, 3, 8, 14, 16, 15, 11, 13, 15, 13, 10, 6, 3, 2, 1, 1, 0, 0)
WEEKDAY_WEIGHTS = (10, 10, 10, 10, 9, 4, 1)   # Monday first

TOPICS = ("a cleaning appointment", "a quote for the repair", "the opening hours",
          "rescheduling my visit", "the invoice I received", "a new consultation",
          "availability next week", "a follow-up visit", "pricing for the service")
OUTCOME_CLOSINGS = {
    "booked": ("Great, I have booked you in. You will get a confirmation by email.",
               "Perfect, thank you so much!"),
    "inquiry": ("Is there anything else I can help you with today?",
                "No, that answers my question. Thanks."),
    "callback": ("I will ask a team member to call you back this afternoon.",
                 "Sounds good, I'll keep my phone close."),
    "not_interested": ("Would you like me to book a time for you?",
                       "Not right now, thank you."),
    "transferred": ("Let me transfer you to a colleague who can help with that.",
                    "Okay, I'll hold."),
    "other": ("Thanks for letting us know, I've made a note of it.",
              "Thank you, goodbye."),
}
SUMMARIES = {
    "booked": "{name} called about {topic} and booked an appointment.",
    "inquiry": "{name} asked about {topic}; the agent answered the question.",
    "callback": "{name} asked about {topic} and requested a call back from staff.",
    "not_interested": "{name} asked about {topic} but decided not to book.",
    "transferred": "{name} called about {topic} and was transferred to a staff member.",
    "other": "{name} called about {topic}.",
}


def demo_email(tier, role="owner"):
    return f"{role}@{tier}.{DEMO_DOMAIN}"


def demo_password(tier):
    return f"demo-{tier}-Passw0rd!"


def seed_demo(calls_per_company=3000, largest_company_calls=3000):
    """Create the demo companies that do not exist yet; return the owners' credentials."""
    engine = current_app.extensions["gateway_engine"]
    credentials = []
    for tier in COMPANIES:
        calls = largest_company_calls if tier == "unlimited" else calls_per_company
        with engine.begin() as conn:
            exists = conn.execute(select(User.id).where(User.email == demo_email(tier))).first()
            if exists is None:
                DemoCompany(conn, tier, calls).create()
        credentials.append({"email": demo_email(tier), "password": demo_password(tier), "tier": tier})
    return credentials


def insert_batched(conn, model, rows):
    for start in range(0, len(rows), BATCH_SIZE):
        conn.execute(insert(model.__table__), rows[start:start + BATCH_SIZE])


def clock_minutes(clock):
    """'09:30' -> 570."""
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def weighted(rng, pairs):
    values, weights = zip(*pairs)
    return rng.choices(values, weights)[0]


class DemoCompany:
    """Generates and inserts one tier's company; every choice comes from ``self.rng``."""

    def __init__(self, conn, tier, calls):
        self.conn = conn
        self.tier = tier
        self.call_count = calls
        self.rng = random.Random(f"voice-gateway-demo-{tier}")
        self.name, timezone, self.minutes, self.price, self.area = COMPANIES[tier]
        self.zone = ZoneInfo(timezone)
        self.timezone = timezone
        # the app's "now" (app.config["CLOCK"]), so a test seeds the same data every day
        self.now = business_now().replace(microsecond=0)
        self.business_hours = {}
        self.taken = {}   # local date -> [(starts, ends)] of the appointments that block a slot
        self.full = set()   # local dates where no slot is left
        self.company_number = f"+1{self.area}555{1000 + list(COMPANIES).index(tier):04d}"

    def create(self):
        self.company_id = self.insert_company()
        self.insert_staff()
        customers = self.insert_customers()
        self.insert_calls(customers)
        self.insert_appointments(customers)
        self.insert_billing()

    def insert_company(self):
        weekday_hours = [["08:00", "18:00"]] if self.tier != "free" else [["09:00", "12:30"], ["13:30", "17:00"]]
        integrations = dict(zip(("retell_agent_id", "calcom_event_type_id", "stripe_customer_id"),
                                DEMO_LINKS[self.tier]))
        self.business_hours = {**{day: weekday_hours for day in ("mon", "tue", "wed", "thu", "fri")},
                               "sat": [["10:00", "14:00"]], "sun": []}
        result = self.conn.execute(insert(Company.__table__).values(
            name=self.name, tier=self.tier, timezone=self.timezone,
            business_hours=self.business_hours,
            integrations=integrations, plan_minutes=self.minutes,
            created_at=self.now - dt.timedelta(days=HISTORY_DAYS + 30), **integrations))
        return result.inserted_primary_key[0]

    def insert_staff(self):
        password_hash = hash_password(demo_password(self.tier))  # argon2 is slow: once per tier
        insert_batched(self.conn, User, [{
            "company_id": self.company_id, "email": demo_email(self.tier, role),
            "name": STAFF_NAMES[role], "role": role, "password_hash": password_hash,
            "status": "active", "credential_version": 1,
            "created_at": self.now - dt.timedelta(days=HISTORY_DAYS + 30)} for role in STAFF_ROLES])

    # -- customers -------------------------------------------------------------------

    def phone(self):
        return f"+1{self.rng.choice(('206', '305', '415', '512', '617', '646', '720', '917'))}" \
               f"{self.rng.randint(200, 999)}{self.rng.randint(0, 9999):04d}"

    def unused_phone(self, used):
        """A number no other customer of the company has (phones are unique per company)."""
        phone = self.phone()
        while phone in used:
            phone = self.phone()
        used.add(phone)
        return phone

    def insert_customers(self):
        count = max(200, min(5000, self.call_count // 15))
        rows = []
        used_phones = set()
        for index in range(count):
            first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
            created = self.now - dt.timedelta(days=self.rng.uniform(0, HISTORY_DAYS + 30))
            rows.append({
                "company_id": self.company_id, "name": f"{first} {last}",
                "phone": self.unused_phone(used_phones),
                "email": (f"{first}.{last}{index}@{self.rng.choice(EMAIL_DOMAINS)}".lower()
                          if self.rng.random() < 0.8 else None),
                "notes": self.rng.choice((None, None, "Prefers mornings.", "Referred by a friend.",
                                          "Ask about insurance.", "VIP customer")),
                "created_at": created, "updated_at": created})
        insert_batched(self.conn, Customer, rows)
        ids = self.conn.execute(select(Customer.id, Customer.name, Customer.phone)
                                .where(Customer.company_id == self.company_id)
                                .order_by(Customer.id)).all()
        return [tuple(row) for row in ids]

    # -- calls -----------------------------------------------------------------------

    def call_start(self):
        """A moment in the past 90 days, weighted towards weekday business hours (local time)."""
        while True:
            days_ago = self.rng.randrange(HISTORY_DAYS)
            local_day = (self.now.astimezone(self.zone) - dt.timedelta(days=days_ago)).date()
            if self.rng.random() * 10 < WEEKDAY_WEIGHTS[local_day.weekday()]:
                break
        hour = self.rng.choices(range(24), HOUR_WEIGHTS)[0]
        local = dt.datetime(local_day.year, local_day.month, local_day.day, hour,
                            self.rng.randrange(60), self.rng.randrange(60), tzinfo=self.zone)
        started = local.astimezone(dt.timezone.utc)
        return min(started, self.now - dt.timedelta(minutes=self.rng.randint(20, 600)))

    def transcript(self, customer_name, topic, outcome):
        agent_close, customer_close = OUTCOME_CLOSINGS[outcome]
        turns = [
            ("Agent", f"Thank you for calling {self.name}, this is Ava. How can I help you today?"),
            ("User", f"Hi, this is {customer_name.split()[0]}. I'm calling about {topic}."),
            ("Agent", "Of course, I can help with that. Could you confirm the best number to reach you?"),
            ("User", "Yes, this number is fine."),
            ("Agent", agent_close),
            ("User", customer_close),
        ]
        return "\n".join(f"{speaker}: {text}" for speaker, text in turns)

    def call_row(self, index, customers):
        status = weighted(self.rng, CALL_STATUS_WEIGHTS)
        direction = "outbound" if self.rng.random() < 0.15 else "inbound"
        customer = self.rng.choice(customers) if self.rng.random() < 0.9 else None
        customer_id, customer_name, customer_phone = customer or (None, "A caller", self.phone())
        started = self.call_start()
        row = {"company_id": self.company_id, "customer_id": customer_id,
               "retell_call_id": f"call_demo_{self.tier}_{index:07d}", "direction": direction,
               "status": status, "started_at": started, "created_at": started,
               "from_number": customer_phone if direction == "inbound" else self.company_number,
               "to_number": self.company_number if direction == "inbound" else customer_phone,
               "duration_seconds": 0, "ended_at": started, "outcome": None, "sentiment": None,
               "summary": None, "transcript": None, "analysis": None}
        topic = self.rng.choice(TOPICS)
        if status == "answered":
            outcome = weighted(self.rng, OUTCOME_WEIGHTS)
            sentiment = weighted(self.rng, SENTIMENT_BY_OUTCOME[outcome])
            duration = int(self.rng.lognormvariate(5.2, 0.6))  # median about 3 minutes
            row.update(outcome=outcome, sentiment=sentiment, duration_seconds=duration,
                       ended_at=started + dt.timedelta(seconds=duration),
                       summary=SUMMARIES[outcome].format(name=customer_name, topic=topic),
                       transcript=self.transcript(customer_name, topic, outcome),
                       analysis={"call_successful": outcome in ("booked", "inquiry", "transferred"),
                                 "user_sentiment": sentiment.title(), "topic": topic})
        elif status == "voicemail":
            duration = self.rng.randint(12, 75)
            row.update(outcome="callback", sentiment="neutral", duration_seconds=duration,
                       ended_at=started + dt.timedelta(seconds=duration),
                       summary=f"{customer_name} left a voicemail about {topic}.",
                       transcript=f"Agent: You've reached {self.name}, please leave a message.\n"
                                  f"User: Hi, it's {customer_name.split()[0]} calling about {topic}. "
                                  f"Please call me back.")
        elif status == "missed":
            row["ended_at"] = started + dt.timedelta(seconds=self.rng.randint(15, 40))
        return row

    def insert_calls(self, customers):
        rows = [self.call_row(index, customers) for index in range(self.call_count)]
        rows.sort(key=lambda row: row["started_at"])  # ids grow with time, like real traffic
        insert_batched(self.conn, Call, rows)
        self.usage = self.monthly_usage(rows)

    # -- appointments -------------------------------------------------------------------

    def slot(self, day_offset, blocking=True):
        """A 30 or 60 minute slot inside business hours, ``day_offset`` days from today or
        within the week after, clear of every appointment that blocks a slot (as the
        booking API requires); None when that week is full. ``blocking=False``: any slot
        inside business hours, for an appointment that blocks nothing (cancelled)."""
        minutes = self.rng.choice((30, 30, 60))
        today = self.now.astimezone(self.zone).date()
        for shift in range(7):
            day = today + dt.timedelta(days=day_offset + shift)
            if blocking and day in self.full:
                continue
            starts = [start for opens, closes in self.business_hours.get(WEEKDAYS[day.weekday()]) or ()
                      for start in range(clock_minutes(opens), clock_minutes(closes) - minutes + 1, SLOT_STEP)]
            self.rng.shuffle(starts)
            midnight = dt.datetime(day.year, day.month, day.day, tzinfo=self.zone)
            for start in starts:
                # wall-clock arithmetic on the local day, then UTC (right across DST changes)
                starts_at = (midnight + dt.timedelta(minutes=start)).astimezone(dt.timezone.utc)
                ends_at = starts_at + dt.timedelta(minutes=minutes)
                taken = self.taken.setdefault(day, [])
                if not blocking:
                    return starts_at, ends_at
                if all(ends_at <= other_start or other_end <= starts_at for other_start, other_end in taken):
                    taken.append((starts_at, ends_at))
                    return starts_at, ends_at
            if minutes == SLOT_STEP:   # not even the shortest fits: skip the day from now on
                self.full.add(day)
        return None

    def release(self, starts_at, ends_at):
        """A cancelled appointment frees its slot."""
        day = starts_at.astimezone(self.zone).date()
        self.taken[day].remove((starts_at, ends_at))
        self.full.discard(day)

    def placed_appointment(self, customer_id, day_offset, call_id=None, created=None):
        """An appointment row whose slot obeys the booking rules for its status: a full
        week is recorded as a cancelled appointment, which blocks nothing."""
        found = self.slot(day_offset)
        if found is None:
            row = self.appointment_row(customer_id, *self.slot(day_offset, blocking=False), call_id, created)
            row["status"] = "cancelled"
            return row
        row = self.appointment_row(customer_id, *found, call_id, created)
        if row["status"] == "cancelled":
            self.release(*found)
        return row

    def appointment_status(self, starts):
        if starts > self.now:
            return weighted(self.rng, (("confirmed", 70), ("pending", 20), ("cancelled", 10)))
        return weighted(self.rng, (("completed", 72), ("no_show", 10), ("cancelled", 18)))

    def appointment_row(self, customer_id, starts, ends, call_id=None, created=None):
        return {"company_id": self.company_id, "customer_id": customer_id, "call_id": call_id,
                "title": self.rng.choice(("Consultation", "Follow-up visit", "Service appointment",
                                          "Initial assessment", "Estimate visit")),
                "starts_at": starts, "ends_at": ends, "status": self.appointment_status(starts),
                "timezone": self.timezone, "notes": None, "idempotency_key": None,
                "calcom_booking_uid": None,
                "created_at": created or min(self.now, starts - dt.timedelta(days=3)),
                "updated_at": created or min(self.now, starts - dt.timedelta(days=3))}

    def insert_appointments(self, customers):
        booked = self.conn.execute(
            select(Call.id, Call.customer_id, Call.started_at)
            .where(Call.company_id == self.company_id, Call.outcome == "booked",
                   Call.customer_id.is_not(None))).all()
        rows = []
        for call_id, customer_id, called_at in booked:
            days_after = self.rng.randint(1, 21)
            offset = (called_at - self.now).days + days_after
            rows.append(self.placed_appointment(customer_id, offset, call_id,
                                                created=called_at + dt.timedelta(minutes=5)))
        # bookings made on the web or by staff, spread over the past and the coming four weeks
        for _ in range(max(60, len(rows) // 4)):
            rows.append(self.placed_appointment(self.rng.choice(customers)[0],
                                                self.rng.randint(-HISTORY_DAYS, 28)))
        for index, row in enumerate(rows):
            row["calcom_booking_uid"] = f"demo-{self.tier}-{index:06d}"
        insert_batched(self.conn, Appointment, rows)

    # -- billing ------------------------------------------------------------------------

    def monthly_usage(self, calls):
        usage = {}
        for row in calls:
            month = row["started_at"].replace(day=1, hour=0, minute=0, second=0)
            calls_in_month, seconds = usage.get(month, (0, 0))
            usage[month] = (calls_in_month + 1, seconds + row["duration_seconds"])
        return usage

    def insert_billing(self):
        invoices, usage_rows = [], []
        for month, (calls, seconds) in sorted(self.usage.items()):
            next_month = (month + dt.timedelta(days=32)).replace(day=1)
            minutes = (seconds + 59) // 60
            usage_rows.append({
                "company_id": self.company_id, "period_start": month,
                "period_end": next_month, "calls": calls, "minutes": minutes,
                "identifier": f"usage_demo_{self.tier}_{month:%Y%m}",
                "reported_at": next_month if next_month <= self.now else None,
                "created_at": min(next_month, self.now)})
            if next_month > self.now or self.price == 0:
                continue  # the current month is not invoiced yet; the free tier is never billed
            overage = max(0, minutes - self.minutes) * 8  # 8 cents a minute past the plan
            amount = self.price + overage
            paid = next_month < self.now - dt.timedelta(days=20) or self.rng.random() < 0.7
            invoices.append({
                "company_id": self.company_id, "stripe_invoice_id": f"in_demo_{self.tier}_{month:%Y%m}",
                "number": f"DEMO-{self.tier[:3].upper()}-{month:%Y%m}",
                "status": "paid" if paid else "open", "currency": "usd", "amount_due": amount,
                "amount_paid": amount if paid else 0, "period_start": month, "period_end": next_month,
                "hosted_invoice_url": f"https://invoice.stripe.com/i/demo_{self.tier}_{month:%Y%m}",
                "created_at": next_month})
        insert_batched(self.conn, UsageRecord, usage_rows)
        if not invoices:
            return
        insert_batched(self.conn, Invoice, invoices)
        stored = self.conn.execute(select(Invoice.id, Invoice.stripe_invoice_id, Invoice.amount_paid,
                                          Invoice.created_at)
                                   .where(Invoice.company_id == self.company_id,
                                          Invoice.status == "paid")).all()
        insert_batched(self.conn, Payment, [{
            "company_id": self.company_id, "invoice_id": invoice_id, "amount": amount,
            "stripe_payment_id": stripe_id.replace("in_", "pi_", 1), "currency": "usd",
            "status": "succeeded", "created_at": created + dt.timedelta(hours=self.rng.randint(1, 72))}
            for invoice_id, stripe_id, amount, created in stored])
