"""helpdesk-fetch: turns mailbox mail into helpdesk tickets."""

__version__ = "0.1.0"
