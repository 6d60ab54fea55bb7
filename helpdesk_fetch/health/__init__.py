"""What operators watch: status."""

# A log record's attribute: this failure is not news (alerts.py, spec §11.2). Here rather than in
# alerts.py: the command line's logging reads it for every command, and needs nothing else of
# alerts (nor the accounts file's schema and the socket module that it imports).
REPEATED = "repeated_failure"
# ...and this one says a failure has ended: news that -q lets through with the errors, since
# the failure's start was one of them.
RECOVERED = "failure_ended"
