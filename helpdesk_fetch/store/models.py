"""The database tables, as peewee models bound late to the database of ``db.open_database``.

All times are naive UTC. Text that comes from mail is a TextField: PostgreSQL enforces the 255
characters of a CharField, SQLite does not, and both must accept the same mail. A change here
needs a new numbered migration in ``migrations/`` (``make migration NAME=...`` writes it from the
difference between these models and the migrations so far; a test checks that they agree);
released migrations never change.
"""

from __future__ import annotations

from peewee import (
    AutoField,
    BigIntegerField,
    BlobField,
    BooleanField,
    CharField,
    DatabaseProxy,
    DateTimeField,
    FloatField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

from helpdesk_fetch.enums import FailureState, MessageKind, MessageState

database = DatabaseProxy()


class BaseModel(Model):
    # Each table's implicit ``id = AutoField()`` is written out below for the type checker
    # (peewee's stubs cannot see the one peewee adds); the schema is the same. So are the
    # ``<foreign key>_id`` attributes peewee adds to a row (the raw id, read without a query):
    # annotations only, for rows (the class attribute is the foreign key field itself).

    class Meta:
        database = database
        legacy_table_names = False


class Setting(BaseModel):
    """Installation-wide values kept with the data, e.g. the secret behind ticket tags."""

    key = CharField(primary_key=True)
    value = TextField()


class Counter(BaseModel):
    """Named counters; ticket numbers come from here (a row lock serialises concurrent writers)."""

    name = CharField(primary_key=True)
    value = BigIntegerField()


class Ticket(BaseModel):
    id = AutoField()
    number = CharField(unique=True)
    subject = TextField()
    status = CharField(index=True)  # TicketStatus
    resource = CharField(null=True, index=True)
    requester = TextField()  # bare address, lower case (up to 320 characters)
    requester_name = TextField(default="")
    account = CharField(null=True)  # the account whose mail opened it
    created_at = DateTimeField()
    updated_at = DateTimeField()
    closed_at = DateTimeField(null=True)
    escalation_due_at = DateTimeField(null=True)
    correlation = TextField(null=True, index=True)  # rule + key of the alerts it collects (§10.2)


class Message(BaseModel):
    """One mail of a ticket: inbound (accepted or rejected) or one of our own auto-mails."""

    id = AutoField()
    ticket = ForeignKeyField(Ticket, backref="messages", on_delete="CASCADE")
    ticket_id: int
    direction = CharField()  # Direction
    state = CharField(default=MessageState.ACCEPTED)
    account = CharField(null=True)
    message_id = TextField(null=True, index=True)
    in_reply_to = TextField(null=True)
    references = TextField(default="")
    from_addr = TextField(default="")
    from_name = TextField(default="")
    to_addrs = TextField(default="[]")  # JSON list of bare addresses
    cc_addrs = TextField(default="[]")
    date = DateTimeField(null=True)  # the Date header, in UTC
    subject = TextField(default="")
    text = TextField(default="")
    html = TextField(null=True)
    auto_submitted = BooleanField(default=False)  # an auto-reply, list or bulk mail (RFC 3834)
    size = IntegerField(default=0)  # of what was stored: up to max_message_bytes (< 2 GiB)
    sha256 = CharField(null=True)
    received_at = DateTimeField(index=True)  # check counts the last hour's deliveries
    kind = CharField(default=MessageKind.MESSAGE)  # MessageKind (spec §9)
    rule = CharField(null=True)  # the [[rules]] table that decided it (spec §10.1)
    notice = TextField(null=True)  # what the parser kept only in the raw (e.g. parts past 1000)

    class Meta:
        indexes = ((("account", "sha256"), False),)


class RawMessage(BaseModel):
    """The message exactly as received (zlib), apart from Message so lists never load it."""

    message = ForeignKeyField(Message, primary_key=True, on_delete="CASCADE")
    message_id: int
    data = BlobField()


class Attachment(BaseModel):
    id = AutoField()
    message = ForeignKeyField(Message, backref="attachments", on_delete="CASCADE")
    message_id: int
    filename = TextField()
    content_type = TextField()  # as the sender wrote it: no length limit
    size = IntegerField()
    sha256 = CharField()
    content = BlobField()


class SourceKey(BaseModel):
    """Where a stored message came from: (account, key) is never ingested twice (spec §4.1)."""

    id = AutoField()
    account = CharField()
    key = TextField()
    message = ForeignKeyField(Message, null=True, on_delete="CASCADE")
    message_id: int | None
    created_at = DateTimeField()

    class Meta:
        indexes = ((("account", "key"), True),)


class FailedMessage(BaseModel):
    """A message that did not ingest, and where it waits (error folder, server, quarantine)."""

    id = AutoField()
    account = CharField(index=True)
    source_key = TextField()
    location = TextField(default="")
    reason = TextField()
    message_id = TextField(null=True)
    from_addr = TextField(default="")
    subject = TextField(default="")
    date = DateTimeField(null=True)
    size = BigIntegerField(default=0)  # as the server lists it: any size (bigint: spec §4.4)
    sha256 = CharField(null=True)
    # A column named raw hides Model.raw() (raw SQL), which no one calls on this table.
    raw = BlobField(null=True)  # type: ignore[assignment]  # zlib copy when it was downloaded
    state = CharField(default=FailureState.PENDING, index=True)
    attempts = IntegerField(default=1)
    created_at = DateTimeField()
    updated_at = DateTimeField()

    class Meta:
        indexes = ((("account", "source_key"), True),)


class Outbox(BaseModel):
    """An auto-mail waiting to be sent; the mail itself is an outbound Message."""

    id = AutoField()
    message = ForeignKeyField(Message, on_delete="CASCADE")
    message_id: int
    kind = CharField()
    recipients = TextField()  # JSON list
    rate_key = TextField(null=True, index=True)  # the sender it answers, for the hourly cap
    created_at = DateTimeField()
    attempts = IntegerField(default=0)
    next_attempt_at = DateTimeField(index=True)
    last_error = TextField(null=True)
    sent_at = DateTimeField(null=True, index=True)
    failed_at = DateTimeField(null=True)  # refused for good (5xx): not retried
    # Deferred because no session with the SMTP server could be opened, not for a reason of its
    # own: sent by the first run that opens one, whatever its back-off (outbox.py).
    awaits_server = BooleanField(default=False)


class IgnoredMessage(BaseModel):
    """Mail that opened no ticket (spec §9.4): kept with its raw bytes for ``ignored_days``, so
    that ``ignored restore`` can still make it a request."""

    id = AutoField()
    account = CharField(index=True)
    source_key = TextField()
    message_id = TextField(null=True)
    from_addr = TextField(default="")
    subject = TextField(default="")
    date = DateTimeField(null=True)
    kind = CharField(default=MessageKind.MESSAGE)
    reason = TextField()  # bounce | auto_reply | the deciding rule's name
    size = IntegerField(default=0)
    sha256 = CharField(null=True)
    raw = BlobField()  # type: ignore[assignment]  # zlib; hides Model.raw() as above
    received_at = DateTimeField(index=True)
    restored_at = DateTimeField(null=True)

    class Meta:
        indexes = ((("account", "source_key"), True), (("account", "sha256"), False))


class BouncingAddress(BaseModel):
    """A recipient a bounce reported as failed (spec §9.2): no auto-mail goes to it for
    ``bounce_hold_days`` after *bounced_at*."""

    id = AutoField()
    address = TextField(index=True)  # bare, lower case
    ticket = ForeignKeyField(Ticket, null=True, on_delete="CASCADE")
    ticket_id: int | None
    message = ForeignKeyField(Message, null=True, on_delete="CASCADE")  # the bounce
    message_id: int | None
    status = TextField(default="")  # what the report said (Status, Diagnostic-Code)
    bounced_at = DateTimeField(index=True)


class HookEvent(BaseModel):
    """A ticket event for the ``[hooks]`` command (spec §12), queued in the ticket's own
    transaction and run after commit, in order per ticket, until it exits 0."""

    id = AutoField()
    event = CharField()
    ticket = ForeignKeyField(Ticket, null=True, on_delete="CASCADE")
    ticket_id: int | None
    payload = TextField()  # the JSON the command reads on stdin
    created_at = DateTimeField()
    attempts = IntegerField(default=0)
    next_attempt_at = DateTimeField(index=True)
    last_error = TextField(null=True)
    delivered_at = DateTimeField(null=True, index=True)
    failed_at = DateTimeField(null=True)  # max_attempts reached: not run again


class Canary(BaseModel):
    """A test message ``probe send`` sent to an account (spec §11.3), and when it arrived."""

    id = AutoField()
    account = CharField(index=True)
    token = CharField(unique=True)  # in its marker header, signed with the tag secret
    message_id = TextField()
    sent_at = DateTimeField(index=True)
    received_at = DateTimeField(null=True)
    travel_seconds = FloatField(null=True)
    # Why it never left (the SMTP server refused the session or the mail): sent_at is when it
    # was tried, and `check` finds it overdue like one lost on its way (spec §11.3).
    error = TextField(null=True)


class AccountRun(BaseModel):
    """One account in one run: the history behind ``status`` and ``accounts list``."""

    id = AutoField()
    account = CharField(index=True)
    started_at = DateTimeField(index=True)
    finished_at = DateTimeField(null=True)
    outcome = CharField()  # RunOutcome
    fetched = IntegerField(default=0)
    new_tickets = IntegerField(default=0)
    threaded = IntegerField(default=0)
    rejected = IntegerField(default=0)
    duplicates = IntegerField(default=0)
    errors = IntegerField(default=0)
    ignored = IntegerField(default=0)
    rule_counts = TextField(default="{}")  # JSON: rule name -> messages it decided
    error = TextField(null=True)
    host = CharField(default="")


MODELS = [Setting, Counter, Ticket, Message, RawMessage, Attachment, SourceKey, FailedMessage,
          Outbox, AccountRun, IgnoredMessage, BouncingAddress, HookEvent, Canary]
