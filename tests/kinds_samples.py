"""Sample mails of every kind the helpdesk meets, written for these tests from the formats the MTAs,
responders and monitoring systems document (RFC 3464/3834/6522/8098, the MTAs' bounce templates,
the monitoring tools' default notification templates). Each function returns the raw bytes of one
mail as it would lie in the helpdesk's Maildir; its comment names what it imitates.

The story behind them: helpdesk@example.com received a request from a customer
(``REQUEST_ID``) and answered with a receipt (``RECEIPT_ID``); most bounces and auto-replies here
answer that receipt. Host names, addresses and IDs are made up (RFC 2606 domains, RFC 5737 IPs).
"""

from __future__ import annotations

import base64
import zlib

HELPDESK = "helpdesk@example.com"
REQUEST_ID = "CAF3x9pQ2m7rT1vWk8e4@mail.example.org"
RECEIPT_ID = "176449164210.4242.1877346532090417231.hd@example.com"
SUBJECT = "[TicketID 1042QKXP] We have received your request: Printer broken"
SPAM_ID = "20261130081502.7F3A9C21B4@bulk-sender.example.net"


def _mail(text: str) -> bytes:
    """The mail as bytes: the samples are written without the leading newline of the literal."""
    return text.lstrip("\n").encode("utf-8")


def _receipt(to: str, message_id: str = RECEIPT_ID) -> str:
    """Our receipt (automail ``new_ticket``) as it left our SMTP server: what bounces quote."""
    return f"""\
Return-Path: <{HELPDESK}>
Received: from helpdesk.example.com (helpdesk.example.com [192.0.2.10])
	by mail.example.com (Postfix) with ESMTPS id 4Q8ZkP1x3Kz9sWn
	for <{to}>; Mon, 30 Nov 2026 09:14:02 +0100 (CET)
From: {HELPDESK}
To: {to}
Subject: {SUBJECT}
Date: Mon, 30 Nov 2026 08:14:01 +0000
Message-ID: <{message_id}>
In-Reply-To: <{REQUEST_ID}>
References: <{REQUEST_ID}>
Auto-Submitted: auto-replied
X-Auto-Response-Suppress: All
X-Helpdesk-Fetch: new_ticket; ticket=1042
MIME-Version: 1.0
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: 7bit

Hello,

we have received your request and will answer it as soon as we can.
Please keep [TicketID 1042QKXP] in the subject of your replies.

Your helpdesk
"""


def _receipt_headers(to: str, message_id: str = RECEIPT_ID) -> str:
    return _receipt(to, message_id).split("\n\n", 1)[0] + "\n"


# -- bounces ---------------------------------------------------------------------------------------

def postfix_failed() -> bytes:
    """Postfix 3.7, bounce(8) failure_template: RFC 3464 report, the original as message/rfc822."""
    return _mail(f"""
Return-Path: <>
Delivered-To: {HELPDESK}
Received: by mail.example.com (Postfix)
	id 4Q8ZkQ0hTcz9sWp; Mon, 30 Nov 2026 09:14:04 +0100 (CET)
Date: Mon, 30 Nov 2026 09:14:04 +0100 (CET)
From: MAILER-DAEMON@mail.example.com (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {HELPDESK}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="4Q8ZkQ0hTcz9sWp.1764490444/mail.example.com"
Content-Transfer-Encoding: 8bit
Message-Id: <20261130081404.4Q8ZkQ0hTcz9sWp@mail.example.com>

This is a MIME-encapsulated message.

--4Q8ZkQ0hTcz9sWp.1764490444/mail.example.com
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mail.example.com.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

For further assistance, please send mail to postmaster.

If you do so, please include this problem report. You can
delete your own text from the attached returned message.

                   The mail system

<dana@customer.example>: host mx1.customer.example[198.51.100.25] said: 550
    5.1.1 <dana@customer.example>: Recipient address rejected: User unknown in
    virtual mailbox table (in reply to RCPT TO command)

--4Q8ZkQ0hTcz9sWp.1764490444/mail.example.com
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.example.com
X-Postfix-Queue-ID: 4Q8ZkP1x3Kz9sWn
X-Postfix-Sender: rfc822; {HELPDESK}
Arrival-Date: Mon, 30 Nov 2026 09:14:02 +0100 (CET)

Final-Recipient: rfc822; dana@customer.example
Original-Recipient: rfc822;dana@customer.example
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx1.customer.example
Diagnostic-Code: smtp; 550 5.1.1 <dana@customer.example>: Recipient address
    rejected: User unknown in virtual mailbox table

--4Q8ZkQ0hTcz9sWp.1764490444/mail.example.com
Content-Description: Undelivered Message
Content-Type: message/rfc822
Content-Transfer-Encoding: 8bit

{_receipt("dana@customer.example")}
--4Q8ZkQ0hTcz9sWp.1764490444/mail.example.com--
""")


def postfix_delayed() -> bytes:
    """Postfix 3.7, bounce(8) delay_template: RFC 3464 report with Action: delayed, the
    original's headers only (text/rfc822-headers), as Postfix sends with a delay warning."""
    return _mail(f"""
Return-Path: <>
Delivered-To: {HELPDESK}
Date: Mon, 30 Nov 2026 13:14:05 +0100 (CET)
From: MAILER-DAEMON@mail.example.com (Mail Delivery System)
Subject: Delayed Mail (still being retried)
To: {HELPDESK}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="4Q8ZkR2mVdz9sWq.1764504845/mail.example.com"
Content-Transfer-Encoding: 8bit
Message-Id: <20261130121405.4Q8ZkR2mVdz9sWq@mail.example.com>

This is a MIME-encapsulated message.

--4Q8ZkR2mVdz9sWq.1764504845/mail.example.com
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mail.example.com.

####################################################################
# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #
####################################################################

Your message could not be delivered for more than 4 hour(s).
It will be retried until it is 5 day(s) old.

For further assistance, please send mail to postmaster.

                   The mail system

<erik@slow.example>: connect to mx.slow.example[203.0.113.40]:25: Connection
    timed out

--4Q8ZkR2mVdz9sWq.1764504845/mail.example.com
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.example.com
X-Postfix-Queue-ID: 4Q8ZkP1x3Kz9sWn
X-Postfix-Sender: rfc822; {HELPDESK}
Arrival-Date: Mon, 30 Nov 2026 09:14:02 +0100 (CET)

Final-Recipient: rfc822; erik@slow.example
Original-Recipient: rfc822;erik@slow.example
Action: delayed
Status: 4.4.1
Diagnostic-Code: X-Postfix; connect to mx.slow.example[203.0.113.40]:25:
    Connection timed out
Will-Retry-Until: Sat, 5 Dec 2026 09:14:02 +0100 (CET)

--4Q8ZkR2mVdz9sWq.1764504845/mail.example.com
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers
Content-Transfer-Encoding: 8bit

{_receipt_headers("erik@slow.example")}
--4Q8ZkR2mVdz9sWq.1764504845/mail.example.com--
""")


def exim_failed_plain() -> bytes:
    """Exim 4.69, the built-in bounce text of the releases before RFC 3464 reports: plain text,
    X-Failed-Recipients, the original copied after "This is a copy of the message"."""
    return _mail(f"""
Return-path: <>
Envelope-to: {HELPDESK}
Delivery-date: Mon, 30 Nov 2026 09:14:06 +0100
Received: from mailnull by mx.gone.example with local (Exim 4.69)
	id 1tQx7e-0004Rb-Ac
	for {HELPDESK}; Mon, 30 Nov 2026 09:14:06 +0100
X-Failed-Recipients: frank@gone.example
Auto-Submitted: auto-replied
From: Mail Delivery System <Mailer-Daemon@mx.gone.example>
To: {HELPDESK}
Subject: Mail delivery failed: returning message to sender
Message-Id: <E1tQx7e-0004Rb-Ac@mx.gone.example>
Date: Mon, 30 Nov 2026 09:14:06 +0100

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  frank@gone.example
    Unrouteable address

------ This is a copy of the message, including all the headers. ------

{_receipt("frank@gone.example")}""")


def exim_failed_dsn() -> bytes:
    """Exim 4.96, the RFC 3464 report Exim sends by default since 4.82 (its Action field before
    Final-Recipient, as Exim writes it); two recipients failed; the original as message/rfc822."""
    original = _receipt("gustav@partner.example").replace(
        "To: gustav@partner.example", "To: gustav@partner.example, greta@partner.example")
    return _mail(f"""
Return-path: <>
Envelope-to: {HELPDESK}
Delivery-date: Mon, 30 Nov 2026 09:14:07 +0100
Received: from Debian-exim by mx.partner.example with local (Exim 4.96)
	id 1tQx7f-0001Zz-0B
	for {HELPDESK}; Mon, 30 Nov 2026 09:14:07 +0100
X-Failed-Recipients: gustav@partner.example, greta@partner.example
Auto-Submitted: auto-replied
From: Mail Delivery System <Mailer-Daemon@mx.partner.example>
To: {HELPDESK}
References: <{RECEIPT_ID}>
Content-Type: multipart/report; report-type=delivery-status; boundary=1764490447-eximdsn-1804289383
MIME-Version: 1.0
Subject: Mail delivery failed: returning message to sender
Message-Id: <E1tQx7f-0001Zz-0B@mx.partner.example>
Date: Mon, 30 Nov 2026 09:14:07 +0100

--1764490447-eximdsn-1804289383
Content-type: text/plain; charset=us-ascii

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  gustav@partner.example
    mailbox is full: retry timeout exceeded
  greta@partner.example
    user unknown

--1764490447-eximdsn-1804289383
Content-type: message/delivery-status

Reporting-MTA: dns; mx.partner.example

Action: failed
Final-Recipient: rfc822;gustav@partner.example
Status: 5.0.0

Action: failed
Final-Recipient: rfc822;greta@partner.example
Status: 5.0.0

--1764490447-eximdsn-1804289383
Content-type: message/rfc822

{original}
--1764490447-eximdsn-1804289383--
""")


def exim_delayed_plain() -> bytes:
    """Exim 4.69, the built-in delay warning (non-standard): no X-Failed-Recipients, "has not yet
    been delivered", "Delivery attempts will continue"."""
    return _mail(f"""
Return-path: <>
Envelope-to: {HELPDESK}
Received: from mailnull by mx.gone.example with local (Exim 4.69)
	id 1tQyAa-0005Cd-Ef
	for {HELPDESK}; Tue, 01 Dec 2026 09:20:00 +0100
Auto-Submitted: auto-replied
From: Mail Delivery System <Mailer-Daemon@mx.gone.example>
To: {HELPDESK}
Subject: Warning: message 1tQx7g-0004Rc-Bd delayed 24 hours
Message-Id: <E1tQyAa-0005Cd-Ef@mx.gone.example>
Date: Tue, 01 Dec 2026 09:20:00 +0100

This message was created automatically by mail delivery software.
A message that you sent has not yet been delivered to one or more of its
recipients after more than 24 hours on the queue on mx.gone.example.

The message identifier is:     1tQx7g-0004Rc-Bd
The subject of the message is: {SUBJECT}
The date of the message is:    Mon, 30 Nov 2026 08:14:01 +0000

The address to which the message has not yet been delivered is:

  hilde@gone.example
    Delay reason: mailbox is full

No action is required on your part. Delivery attempts will continue for
some time, and this warning may be repeated at intervals if the message
remains undelivered. Eventually the mail delivery software will give up,
and when that happens, the message will be returned to you.
""")


def sendmail_failed() -> bytes:
    """Sendmail 8.17: "Returned mail: see transcript for details", RFC 3464 report,
    Auto-Submitted: auto-generated (failure), the original as message/rfc822."""
    return _mail(f"""
Return-Path: <>
Received: from localhost (localhost)
	by mail.partner.example (8.17.2/8.17.2) id 5AU8E8Xk031337;
	Mon, 30 Nov 2026 09:14:08 +0100
Date: Mon, 30 Nov 2026 09:14:08 +0100
From: Mail Delivery Subsystem <MAILER-DAEMON@mail.partner.example>
Message-Id: <202611300814.5AU8E8Xk031337@mail.partner.example>
To: <{HELPDESK}>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="5AU8E8Xk031337.1764490448/mail.partner.example"
Subject: Returned mail: see transcript for details
Auto-Submitted: auto-generated (failure)

This is a MIME-encapsulated message

--5AU8E8Xk031337.1764490448/mail.partner.example

The original message was received at Mon, 30 Nov 2026 09:14:02 +0100
from helpdesk.example.com [192.0.2.10]

   ----- The following addresses had permanent fatal errors -----
<gina@partner.example>
    (reason: 550 5.1.1 <gina@partner.example>... User unknown)

   ----- Transcript of session follows -----
... while talking to inbox.partner.example.:
>>> DATA
<<< 550 5.1.1 <gina@partner.example>... User unknown
550 5.1.1 <gina@partner.example>... User unknown
<<< 503 5.0.0 Need RCPT (recipient)

--5AU8E8Xk031337.1764490448/mail.partner.example
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.partner.example
Received-From-MTA: DNS; helpdesk.example.com
Arrival-Date: Mon, 30 Nov 2026 09:14:02 +0100

Final-Recipient: RFC822; gina@partner.example
Action: failed
Status: 5.1.1
Remote-MTA: DNS; inbox.partner.example
Diagnostic-Code: SMTP; 550 5.1.1 <gina@partner.example>... User unknown
Last-Attempt-Date: Mon, 30 Nov 2026 09:14:08 +0100

--5AU8E8Xk031337.1764490448/mail.partner.example
Content-Type: message/rfc822

{_receipt("gina@partner.example")}
--5AU8E8Xk031337.1764490448/mail.partner.example--
""")


def qmail_failed() -> bytes:
    """qmail 1.03, the qmail-send Bounce Message Format (QSBMF): plain text, subject "failure
    notice", the original after "--- Below this line is a copy of the message."."""
    return _mail(f"""
Return-Path: <>
Delivered-To: {HELPDESK}
Received: (qmail 21417 invoked for bounce); 30 Nov 2026 08:14:09 -0000
Date: 30 Nov 2026 08:14:09 -0000
From: MAILER-DAEMON@mail.oldhost.example
To: {HELPDESK}
Subject: failure notice

Hi. This is the qmail-send program at mail.oldhost.example.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<hans@oldhost.example>:
Sorry, no mailbox here by that name. (#5.1.1)

--- Below this line is a copy of the message.

{_receipt("hans@oldhost.example")}""")


def exchange_ndr_rfc822() -> bytes:
    """Exchange Server 2016 (on premises) NDR: from Exchange's system mailbox, "Undeliverable:",
    RFC 3464 report with a text and HTML explanation, the original as message/rfc822."""
    return _mail(f"""
Return-Path: <>
Received: from EX01.fabrikam.example (10.1.0.5) by EX01.fabrikam.example
 (10.1.0.5) with Microsoft SMTP Server id 15.1.2507.39; Mon, 30 Nov 2026
 09:14:10 +0100
From: Microsoft Outlook
	<MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@fabrikam.example>
To: <{HELPDESK}>
Date: Mon, 30 Nov 2026 09:14:10 +0100
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d"
X-MS-Exchange-Message-Is-Ndr:
Content-Language: en-US
Message-ID: <8f4e1c2a-3b5d-4e6f-9a0b-1c2d3e4f5a6b@EX01.fabrikam.example>
In-Reply-To: <{RECEIPT_ID}>
References: <{RECEIPT_ID}>
Thread-Topic: {SUBJECT}
Subject: Undeliverable: {SUBJECT}

--1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d
Content-Type: multipart/alternative; differences=Content-Type;
	boundary="7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f"

--7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f
Content-Type: text/plain; charset="us-ascii"

Delivery has failed to these recipients or groups:

Ivan Petrov (ivan.petrov@fabrikam.example)
The email address you entered couldn't be found. Please check the
recipient's email address and try to resend the message. If the problem
continues, please contact your helpdesk.


Diagnostic information for administrators:

Generating server: EX01.fabrikam.example

ivan.petrov@fabrikam.example
#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##

Original message headers:

Received: from mail.example.com (192.0.2.11) by EX01.fabrikam.example
 (10.1.0.5) with Microsoft SMTP Server id 15.1.2507.39; Mon, 30 Nov 2026
 09:14:09 +0100
Message-ID: <{RECEIPT_ID}>
Subject: {SUBJECT}

--7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f
Content-Type: text/html; charset="us-ascii"

<html><head></head><body>
<p><b><font color="#000066" size="3" face="Arial">Delivery has failed to these
recipients or groups:</font></b></p>
<p><a href="mailto:ivan.petrov@fabrikam.example">Ivan Petrov
(ivan.petrov@fabrikam.example)</a><br>
The email address you entered couldn't be found.</p>
</body></html>

--7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f--

--1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d
Content-Type: message/delivery-status

Reporting-MTA: dns;EX01.fabrikam.example
Received-From-MTA: dns;mail.example.com
Arrival-Date: Mon, 30 Nov 2026 08:14:09 +0000

Original-Recipient: rfc822;ivan.petrov@fabrikam.example
Final-Recipient: rfc822;ivan.petrov@fabrikam.example
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp;550 5.1.1 RESOLVER.ADR.RecipNotFound; not found

--1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d
Content-Type: message/rfc822

{_receipt("ivan.petrov@fabrikam.example")}
--1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d--
""")


def o365_ndr_headers() -> bytes:
    """Exchange Online (Microsoft 365) NDR: from postmaster of the tenant, "Undeliverable:",
    "Your message to ... couldn't be delivered", RFC 3464 report, the original's headers only
    (text/rfc822-headers)."""
    return _mail(f"""
Return-Path: <>
Received: from AM9PR04MB8000.eurprd04.prod.outlook.example (2603:10a6:20b::10)
 by AM9PR04MB8000.eurprd04.prod.outlook.example with mapi id 15.20.8207.17;
 Mon, 30 Nov 2026 08:14:11 +0000
From: postmaster@contoso.onmicrosoft.example
To: {HELPDESK}
Date: Mon, 30 Nov 2026 08:14:11 +0000
Content-Type: multipart/report; report-type=delivery-status;
	boundary="2a3b4c5d-6e7f-4809-9a1b-2c3d4e5f6a7b"
X-MS-Exchange-Message-Is-Ndr:
Content-Language: en-US
Message-ID: <b3c4d5e6-f708-4192-a3b4-c5d6e7f80912@AM9PR04MB8000.eurprd04.prod.outlook.example>
In-Reply-To: <{RECEIPT_ID}>
References: <{RECEIPT_ID}>
Subject: Undeliverable: {SUBJECT}
MIME-Version: 1.0

--2a3b4c5d-6e7f-4809-9a1b-2c3d4e5f6a7b
Content-Type: multipart/alternative; differences=Content-Type;
	boundary="3b4c5d6e-7f80-4910-8a2b-3c4d5e6f7a8b"

--3b4c5d6e-7f80-4910-8a2b-3c4d5e6f7a8b
Content-Type: text/plain; charset="us-ascii"
Content-Transfer-Encoding: quoted-printable

Your message to jana@contoso.example couldn't be delivered.
jana wasn't found at contoso.example.

helpdesk   Office 365      jana
Action Required                 Recipient
Unknown To address

How to Fix It
The address may be misspelled or may not exist. Try one or more of the foll=
owing:
- Retype the recipient's address, then resend the message.

Diagnostic information for administrators

Generating server: AM9PR04MB8000.eurprd04.prod.outlook.example

jana@contoso.example
Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipien=
t not found by SMTP address lookup'

Original message headers:

Received: from mail.example.com (192.0.2.11) by
 AM9PR04MB8000.eurprd04.prod.outlook.example with Microsoft SMTP Server;
 Mon, 30 Nov 2026 08:14:10 +0000
Message-ID: <{RECEIPT_ID}>

--3b4c5d6e-7f80-4910-8a2b-3c4d5e6f7a8b
Content-Type: text/html; charset="us-ascii"

<html><body><p>Your message to <a href="mailto:jana@contoso.example">jana@contoso.example</a>
couldn't be delivered.</p></body></html>

--3b4c5d6e-7f80-4910-8a2b-3c4d5e6f7a8b--

--2a3b4c5d-6e7f-4809-9a1b-2c3d4e5f6a7b
Content-Type: message/delivery-status

Reporting-MTA: dns;AM9PR04MB8000.eurprd04.prod.outlook.example
Received-From-MTA: dns;mail.example.com
Arrival-Date: Mon, 30 Nov 2026 08:14:10 +0000

Original-Recipient: rfc822;jana@contoso.example
Final-Recipient: rfc822;jana@contoso.example
Action: failed
Status: 5.1.10
Diagnostic-Code: smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not
 found by SMTP address lookup

--2a3b4c5d-6e7f-4809-9a1b-2c3d4e5f6a7b
Content-Type: text/rfc822-headers

{_receipt_headers("jana@contoso.example")}
--2a3b4c5d-6e7f-4809-9a1b-2c3d4e5f6a7b--
""")


def gmail_failed() -> bytes:
    """Gmail's bounce: "Delivery Status Notification (Failure)", "Address not found",
    X-Failed-Recipients, an RFC 3464 report with X-Original-Message-ID, the original attached."""
    return _mail(f"""
Return-Path: <>
Received: by 2002:a05:6a10:9e4c:b0:4f1:2a3b:4c5d with SMTP id m12csp123456pxb;
        Mon, 30 Nov 2026 00:14:12 -0800 (PST)
From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: {HELPDESK}
Auto-Submitted: auto-replied
Subject: Delivery Status Notification (Failure)
References: <{RECEIPT_ID}>
In-Reply-To: <{RECEIPT_ID}>
X-Failed-Recipients: julia@nowhere.example
Message-ID: <6750a1b4.050a0220.1c2d3e.0004.GMR@mx.google.com>
Date: Mon, 30 Nov 2026 00:14:12 -0800 (PST)
MIME-Version: 1.0
Content-Type: multipart/report; boundary="0000000000009a8b7c062a1b2c3d";
	report-type=delivery-status

--0000000000009a8b7c062a1b2c3d
Content-Type: multipart/related; boundary="0000000000009a8b7c062a1b2c4e"

--0000000000009a8b7c062a1b2c4e
Content-Type: multipart/alternative; boundary="0000000000009a8b7c062a1b2c5f"

--0000000000009a8b7c062a1b2c5f
Content-Type: text/plain; charset="UTF-8"


** Address not found **

Your message wasn't delivered to julia@nowhere.example because the address
couldn't be found, or is unable to receive mail.

Learn more here: https://support.google.example/mail/?p=NoSuchUser

The response was:

The email account that you tried to reach does not exist. Please try
double-checking the recipient's email address for typos or unnecessary spaces.

--0000000000009a8b7c062a1b2c5f
Content-Type: text/html; charset="UTF-8"

<html><body><h2>Address not found</h2><p>Your message wasn't delivered to
<b>julia@nowhere.example</b> because the address couldn't be found.</p></body></html>

--0000000000009a8b7c062a1b2c5f--

--0000000000009a8b7c062a1b2c4e--

--0000000000009a8b7c062a1b2c3d
Content-Type: message/delivery-status

Reporting-MTA: dns; googlemail.com
Arrival-Date: Mon, 30 Nov 2026 00:14:11 -0800 (PST)
X-Original-Message-ID: <{RECEIPT_ID}>

Final-Recipient: rfc822; julia@nowhere.example
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; The email account that you tried to reach does not exist.
Last-Attempt-Date: Mon, 30 Nov 2026 00:14:12 -0800 (PST)

--0000000000009a8b7c062a1b2c3d
Content-Type: message/rfc822

{_receipt("julia@nowhere.example")}
--0000000000009a8b7c062a1b2c3d--
""")


def quoted_id_only() -> bytes:
    """A prose-only notice of the kind mail filtering gateways send (no single product): from
    postmaster, nothing attached, the original named only by a Message-ID in the text."""
    return _mail(f"""
Return-Path: <>
From: postmaster@filter.partner.example
To: {HELPDESK}
Subject: Delivery failure notification
Date: Mon, 30 Nov 2026 09:14:13 +0100
Message-ID: <nd-77120931@filter.partner.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

Your message could not be delivered to the following recipient:

    karl@partner.example

Reason: the mailbox has been disabled.

Details of the message you sent:

    Subject:    {SUBJECT}
    Message-ID: <{RECEIPT_ID}>
    Sent:       Mon, 30 Nov 2026 08:14:01 +0000

This notice was generated automatically; please do not reply to it.
""")


def backscatter() -> bytes:
    """Postfix 3.7 failure report for spam that forged our address as its sender: the original
    (text/rfc822-headers) is a message we never sent."""
    return _mail(f"""
Return-Path: <>
Delivered-To: {HELPDESK}
Date: Mon, 30 Nov 2026 10:02:11 +0100 (CET)
From: MAILER-DAEMON@mx.victim.example (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {HELPDESK}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="4Q8bGH5xQkz1Pq7.1764493331/mx.victim.example"
Message-Id: <20261130090211.4Q8bGH5xQkz1Pq7@mx.victim.example>

This is a MIME-encapsulated message.

--4Q8bGH5xQkz1Pq7.1764493331/mx.victim.example
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.victim.example.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

                   The mail system

<nobody@victim.example>: user unknown

--4Q8bGH5xQkz1Pq7.1764493331/mx.victim.example
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.victim.example
Arrival-Date: Mon, 30 Nov 2026 10:02:10 +0100 (CET)

Final-Recipient: rfc822; nobody@victim.example
Action: failed
Status: 5.1.1

--4Q8bGH5xQkz1Pq7.1764493331/mx.victim.example
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

Received: from bulk-sender.example.net (unknown [203.0.113.99])
	by mx.victim.example (Postfix) with ESMTP id 4Q8bGH5xQkz1Pq7
	for <nobody@victim.example>; Mon, 30 Nov 2026 10:02:10 +0100 (CET)
From: "Helpdesk" <{HELPDESK}>
To: nobody@victim.example
Subject: Your invoice is overdue - act now
Date: Mon, 30 Nov 2026 09:02:09 +0000
Message-ID: <{SPAM_ID}>

--4Q8bGH5xQkz1Pq7.1764493331/mx.victim.example--
""")


# -- auto-replies ----------------------------------------------------------------------------------

def exchange_oof_en() -> bytes:
    """Exchange Online out-of-office reply: "Automatic reply:", Auto-Submitted: auto-generated,
    X-Auto-Response-Suppress: All, X-MS-Exchange-Inbox-Rules-Loop."""
    return _mail(f"""
Return-Path: <lena.schmidt@fabrikam.example>
From: Lena Schmidt <lena.schmidt@fabrikam.example>
To: "{HELPDESK}" <{HELPDESK}>
Subject: Automatic reply: {SUBJECT}
Thread-Topic: {SUBJECT}
Thread-Index: AQHbQ2x9k0p1v2w3x4y5z6A7B8C9DA==
Date: Mon, 30 Nov 2026 08:14:14 +0000
Message-ID: <AM0PR01MB1234B5C6D7E8F9A0B1C2D3E4A5B6@AM0PR01MB1234.eurprd01.prod.outlook.example>
References: <{RECEIPT_ID}>
In-Reply-To: <{RECEIPT_ID}>
Auto-Submitted: auto-generated
X-MS-Has-Attach:
X-Auto-Response-Suppress: All
X-MS-Exchange-Inbox-Rules-Loop: lena.schmidt@fabrikam.example
X-MS-TNEF-Correlator:
Content-Language: en-US
MIME-Version: 1.0
Content-Type: multipart/alternative;
	boundary="_000_AM0PR01MB1234B5C6D7E8F9A0B1C2D3E4A5B6_"

--_000_AM0PR01MB1234B5C6D7E8F9A0B1C2D3E4A5B6_
Content-Type: text/plain; charset="us-ascii"

I am out of the office until 7 December with no access to email.
For urgent matters please call the front desk.

--_000_AM0PR01MB1234B5C6D7E8F9A0B1C2D3E4A5B6_
Content-Type: text/html; charset="us-ascii"

<html><body><p>I am out of the office until 7 December with no access to email.</p></body></html>

--_000_AM0PR01MB1234B5C6D7E8F9A0B1C2D3E4A5B6_--
""")


def exchange_oof_de() -> bytes:
    """Exchange Server 2010 (on premises, German mailbox) out-of-office reply: "Automatische
    Antwort:", X-Auto-Response-Suppress: All, no Auto-Submitted (servers that old leave it out)."""
    return _mail(f"""
Return-Path: <m.mueller@kunde.example>
From: =?iso-8859-1?Q?M=FCller=2C_Martin?= <m.mueller@kunde.example>
To: "{HELPDESK}" <{HELPDESK}>
Subject: Automatische Antwort: {SUBJECT}
Thread-Topic: {SUBJECT}
Thread-Index: AQHbQ3a1b2c3d4e5f6a7b8c9d0e1f2==
Date: Mon, 30 Nov 2026 09:14:15 +0100
Message-ID: <9463ba989c394cfc90d12ed622fc69f8@EXCH01.kunde.example>
References: <{RECEIPT_ID}>
In-Reply-To: <{RECEIPT_ID}>
X-Auto-Response-Suppress: All
Content-Language: de-DE
X-MS-Has-Attach:
X-MS-TNEF-Correlator:
MIME-Version: 1.0
Content-Type: text/plain; charset="iso-8859-1"
Content-Transfer-Encoding: quoted-printable

Ich bin bis einschlie=DFlich 4. Dezember nicht im B=FCro. Ihre Nachricht wird
nicht weitergeleitet.
""")


def gmail_vacation() -> bytes:
    """Gmail's vacation responder: the subject the user chose, Auto-Submitted: auto-replied and
    X-Autoreply: yes, In-Reply-To the mail it answers."""
    return _mail(f"""
Return-Path: <maria.kunde@gmail.example>
MIME-Version: 1.0
References: <{RECEIPT_ID}>
In-Reply-To: <{RECEIPT_ID}>
Auto-Submitted: auto-replied
X-Autoreply: yes
From: Maria Kunde <maria.kunde@gmail.example>
Date: Mon, 30 Nov 2026 00:14:16 -0800
Message-ID: <CAL9x8p=VaCaTi0nq7W1e2r3t4y5u6i7o8p9a0s1d2f3g4@mail.gmail.example>
Subject: Away until 7 December
To: {HELPDESK}
Content-Type: multipart/alternative; boundary="000000000000c1d2e3f4a5b6c7d8"

--000000000000c1d2e3f4a5b6c7d8
Content-Type: text/plain; charset="UTF-8"

Thank you for your mail. I am travelling and will answer after 7 December.

--000000000000c1d2e3f4a5b6c7d8
Content-Type: text/html; charset="UTF-8"

<div dir="ltr">Thank you for your mail. I am travelling and will answer after 7 December.</div>

--000000000000c1d2e3f4a5b6c7d8--
""")


def sieve_vacation() -> bytes:
    """Dovecot Pigeonhole 0.5 Sieve "vacation" (RFC 5230, RFC 3834) behind Postfix: null
    envelope sender, Auto-Submitted: auto-replied (vacation), subject "Auto: ..."."""
    return _mail(f"""
Return-Path: <>
Delivered-To: {HELPDESK}
Received: from mail.customer.example (mail.customer.example [198.51.100.7])
	by mail.example.com (Postfix) with ESMTPS id 4Q8ZkT3nWfz9sWr
	for <{HELPDESK}>; Mon, 30 Nov 2026 09:14:17 +0100 (CET)
Message-ID: <dovecot-sieve-1764490457-31337-0@mail.customer.example>
Date: Mon, 30 Nov 2026 09:14:17 +0100
X-Sieve: Pigeonhole Sieve 0.5.21 (f6cd4b8e)
From: Otto Normal <otto@customer.example>
To: <{HELPDESK}>
Subject: Auto: {SUBJECT}
In-Reply-To: <{RECEIPT_ID}>
References: <{RECEIPT_ID}>
Auto-Submitted: auto-replied (vacation)
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

I am on parental leave until March. Your mail will not be forwarded.
""")


def x_autoreply() -> bytes:
    """The autoresponder of a shared-hosting control panel that marks its replies with
    X-Autoreply only (no RFC 3834 header)."""
    return _mail(f"""
Return-Path: <info@smallshop.example>
From: info@smallshop.example
To: {HELPDESK}
Subject: Re: {SUBJECT}
Date: Mon, 30 Nov 2026 09:14:18 +0100
Message-ID: <autoreply.1764490458.5521@web17.hosting.example>
X-Autoreply: yes
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Thank you for your message. Our shop is closed for inventory until Monday.
""")


def x_autorespond() -> bytes:
    """A shared host's autoresponder script that sets X-Autorespond and Precedence: auto_reply
    (a non-standard value some responders use), no RFC 3834 header."""
    return _mail(f"""
Return-Path: <sales@tools.example>
From: Tools Sales <sales@tools.example>
To: {HELPDESK}
Subject: Re: {SUBJECT}
Date: Mon, 30 Nov 2026 09:14:19 +0100
Message-ID: <20261130081419.88421@tools.example>
X-Autorespond: Will not send another autoreply for 86400 seconds
Precedence: auto_reply
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

We received your mail and will get back to you within two working days.
""")


def read_receipt() -> bytes:
    """Thunderbird 128 read receipt (RFC 8098 MDN): multipart/report with
    report-type=disposition-notification."""
    return _mail(f"""
Return-Path: <carol@example.org>
From: Carol Customer <carol@example.org>
To: {HELPDESK}
Subject: Return Receipt (displayed) - {SUBJECT}
Date: Mon, 30 Nov 2026 09:20:00 +0100
Message-ID: <5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9@example.org>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=disposition-notification;
	boundary="------------mdn-4d5e6f7a"

This is a multi-part message in MIME format.
--------------mdn-4d5e6f7a
Content-Type: text/plain; charset=UTF-8

This is a Return Receipt for the mail that you sent to carol@example.org.

Note: This Return Receipt only acknowledges that the message was displayed on
the recipient's computer.

--------------mdn-4d5e6f7a
Content-Type: message/disposition-notification; name="MDNPart2.txt"
Content-Disposition: inline

Reporting-UA: example.org; Thunderbird 128.5.0
Final-Recipient: rfc822;carol@example.org
Original-Message-ID: <{RECEIPT_ID}>
Disposition: manual-action/MDN-sent-manually; displayed

--------------mdn-4d5e6f7a--
""")


def own_automail_back() -> bytes:
    """Our own receipt come back to us (a customer's address forwards to the helpdesk): marked
    Auto-Submitted and with our X-Helpdesk-Fetch header."""
    return _mail(f"""
Delivered-To: {HELPDESK}
{_receipt("alias@customer.example", "176449164299.4242.5551212.hd@example.com")}""")


# -- mail from people and lists --------------------------------------------------------------------

def person() -> bytes:
    """A person's request, sent with Thunderbird."""
    return _mail(f"""
Return-Path: <carol@example.org>
Message-ID: <{REQUEST_ID}>
Date: Mon, 30 Nov 2026 09:13:55 +0100
MIME-Version: 1.0
User-Agent: Mozilla Thunderbird
From: Carol Customer <carol@example.org>
To: {HELPDESK}
Subject: Printer broken
Content-Type: text/plain; charset=UTF-8; format=flowed
Content-Transfer-Encoding: 7bit

Hello,

the printer on the second floor does not print since this morning.

Carol
""")


def mailing_list() -> bytes:
    """A post distributed by Mailman 3: List-Id, List-Unsubscribe, Precedence: list."""
    return _mail(f"""
Return-Path: <users-bounces@lists.example.org>
From: Peter Poster <peter@example.net>
To: users@lists.example.org
Cc: {HELPDESK}
Subject: [users] Anyone else seeing printer problems?
Date: Mon, 30 Nov 2026 09:30:00 +0100
Message-ID: <e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b@example.net>
MIME-Version: 1.0
Content-Type: text/plain; charset="us-ascii"
Message-ID-Hash: K3L4M5N6O7P8Q9R0S1T2U3V4W5X6Y7Z8
X-Mailman-Version: 3.3.9
Precedence: list
List-Id: Users of the example products <users.lists.example.org>
List-Post: <mailto:users@lists.example.org>
List-Unsubscribe: <mailto:users-leave@lists.example.org>

Since this morning nothing prints here either.
""")


def person_forwards_bounce() -> bytes:
    """A person forwards a Postfix bounce as an attachment (Thunderbird "Forward as
    Attachment"): their own mail, not a bounce."""
    bounce = postfix_failed().decode()
    return _mail(f"""
Return-Path: <carol@example.org>
Message-ID: <7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d@example.org>
Date: Mon, 30 Nov 2026 10:00:00 +0100
MIME-Version: 1.0
User-Agent: Mozilla Thunderbird
From: Carol Customer <carol@example.org>
To: {HELPDESK}
Subject: Fwd: Undelivered Mail Returned to Sender
Content-Type: multipart/mixed; boundary="------------fwd0123456789"

This is a multi-part message in MIME format.
--------------fwd0123456789
Content-Type: text/plain; charset=UTF-8; format=flowed
Content-Transfer-Encoding: 7bit

I got this when I wrote to my colleague Dana. What does it mean?

--------------fwd0123456789
Content-Type: message/rfc822; name="Undelivered Mail Returned to Sender.eml"
Content-Disposition: attachment; filename="Undelivered Mail Returned to Sender.eml"

{bounce}
--------------fwd0123456789--
""")


def person_forwards_bounce_inline() -> bytes:
    """A person forwards an Exim bounce inline (Outlook's "Forward"): the bounce's words are
    in their text, but they are not the mail system."""
    quoted = exim_failed_plain().decode().split("\n\n", 1)[1]
    return _mail(f"""
Return-Path: <ute@example.org>
From: Ute Anwender <ute@example.org>
To: {HELPDESK}
Subject: FW: Mail delivery failed: returning message to sender
Date: Mon, 30 Nov 2026 10:05:00 +0100
Message-ID: <DB9PR02MB1234ABCD@DB9PR02MB1234.eurprd02.prod.outlook.example>
MIME-Version: 1.0
Content-Type: text/plain; charset="utf-8"

Can you check why my mail to Frank bounced?

-----Original Message-----
From: Mail Delivery System <Mailer-Daemon@mx.gone.example>
Sent: Monday, 30 November 2026 09:14
To: ute@example.org
Subject: Mail delivery failed: returning message to sender

{quoted}""")


def person_undeliverable_subject() -> bytes:
    """A person who writes "Undeliverable" at the start of a subject."""
    return _mail(f"""
Return-Path: <oliver@example.org>
From: Oliver Orders <oliver@example.org>
To: {HELPDESK}
Subject: Undeliverable: parcel 4711 came back to us
Date: Mon, 30 Nov 2026 10:10:00 +0100
Message-ID: <parcel4711.oliver@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset="utf-8"

The courier says the parcel was undeliverable and could not be delivered to
the customer. Could you look up the address we have on file?
""")


def postmaster_writes() -> bytes:
    """A partner's postmaster writes to the helpdesk as a person about bounced mail: from the
    mail system's address, but in their own words."""
    return _mail(f"""
Return-Path: <postmaster@partner.example>
From: Partner Postmaster <postmaster@partner.example>
To: {HELPDESK}
Subject: Re: Undeliverable mail from your helpdesk
Date: Mon, 30 Nov 2026 11:00:00 +0100
Message-ID: <pm-reply-2201@partner.example>
MIME-Version: 1.0
Content-Type: text/plain; charset="utf-8"

Hello,

our server rejected your receipts as undeliverable because of an SPF error on
your side. Please fix your DNS records and tell us when we can test again.

Regards, the partner.example postmaster
""")


def auto_generated_notice() -> bytes:
    """Another system's notification (a web shop's order mailer): Auto-Submitted:
    auto-generated, not a reply to anything. It asks for work: a ticket, but no receipt."""
    return _mail(f"""
Return-Path: <shop@orders.example>
From: Web Shop <shop@orders.example>
To: {HELPDESK}
Subject: Return request for order 100234
Date: Mon, 30 Nov 2026 11:30:00 +0100
Message-ID: <order-100234-return@orders.example>
Auto-Submitted: auto-generated
MIME-Version: 1.0
Content-Type: text/plain; charset="utf-8"

Customer carol@example.org asks to return order 100234 (1 x toner cartridge).
Reason given: wrong model.
""")


# -- monitoring (kind message to the classifier; a rule makes them alerts, spec §10.2) -------------

def _nagios(subject: str, body: str, when: str) -> bytes:
    """Nagios Core 4.4's default notify-*-by-email commands: printf | /usr/bin/mail -s."""
    return _mail(f"""
Return-Path: <nagios@monitor.example.com>
Received: by monitor.example.com (Postfix, from userid 113)
	id 4Q8ZmA1bCdz7tYh; {when}
Subject: {subject}
To: <{HELPDESK}>
User-Agent: mail (GNU Mailutils 3.15)
Date: {when}
Message-Id: <20261130{zlib.crc32(subject.encode()) % 10**6:06d}.4Q8ZmA1bCdz7tYh@monitor.example.com>
From: nagios <nagios@monitor.example.com>

{body}""")


def nagios_host_problem() -> bytes:
    """Nagios Core 4.4 notify-host-by-email, PROBLEM: host web01 DOWN."""
    return _nagios("** PROBLEM Host Alert: web01 is DOWN **", """\
***** Nagios *****

Notification Type: PROBLEM
Host: web01
State: DOWN
Address: 192.0.2.21
Info: CRITICAL - Host Unreachable (192.0.2.21)

Date/Time: Mon Nov 30 09:12:44 CET 2026
""", "Mon, 30 Nov 2026 09:12:44 +0100 (CET)")


def nagios_host_recovery() -> bytes:
    """Nagios Core 4.4 notify-host-by-email, RECOVERY: host web01 UP."""
    return _nagios("** RECOVERY Host Alert: web01 is UP **", """\
***** Nagios *****

Notification Type: RECOVERY
Host: web01
State: UP
Address: 192.0.2.21
Info: PING OK - Packet loss = 0%, RTA = 0.42 ms

Date/Time: Mon Nov 30 09:31:02 CET 2026
""", "Mon, 30 Nov 2026 09:31:02 +0100 (CET)")


def nagios_service_problem() -> bytes:
    """Nagios Core 4.4 notify-service-by-email, PROBLEM: service HTTP on web01 CRITICAL."""
    return _nagios("** PROBLEM Service Alert: web01/HTTP is CRITICAL **", """\
***** Nagios *****

Notification Type: PROBLEM

Service: HTTP
Host: web01
Address: 192.0.2.21
State: CRITICAL

Date/Time: Mon Nov 30 09:13:10 CET 2026

Additional Info:

connect to address 192.0.2.21 and port 80: Connection refused
""", "Mon, 30 Nov 2026 09:13:10 +0100 (CET)")


def nagios_service_recovery() -> bytes:
    """Nagios Core 4.4 notify-service-by-email, RECOVERY: service HTTP on web01 OK."""
    return _nagios("** RECOVERY Service Alert: web01/HTTP is OK **", """\
***** Nagios *****

Notification Type: RECOVERY

Service: HTTP
Host: web01
Address: 192.0.2.21
State: OK

Date/Time: Mon Nov 30 09:33:40 CET 2026

Additional Info:

HTTP OK: HTTP/1.1 200 OK - 6124 bytes in 0.012 second response time
""", "Mon, 30 Nov 2026 09:33:40 +0100 (CET)")


def _icinga(subject: str, body: str, when: str) -> bytes:
    """Icinga 2.14's mail-host-notification.sh / mail-service-notification.sh: plain text via
    mail(1), the subject "[TYPE] ... is STATE!"."""
    return _mail(f"""
Return-Path: <icinga@monitor.example.com>
Subject: {subject}
To: <{HELPDESK}>
User-Agent: mail (GNU Mailutils 3.15)
Date: {when}
Message-Id: <20261130{zlib.crc32(subject.encode()) % 10**6:06d}.4Q8ZnB2cDez8uZi@monitor.example.com>
From: icinga <icinga@monitor.example.com>
Content-Type: text/plain; charset=UTF-8

{body}""")


def icinga2_host_problem() -> bytes:
    """Icinga 2.14 mail-host-notification.sh, PROBLEM: host db02 DOWN."""
    return _icinga("[PROBLEM] Host db02 is DOWN!", """\
***** Host Monitoring on monitor *****

db02 is DOWN!

Info:    CRITICAL - Host Unreachable (192.0.2.32)

When:    2026-11-30 09:12:44 +0100
Host:    db02
IPv4:    192.0.2.32
""", "Mon, 30 Nov 2026 09:12:44 +0100")


def icinga2_host_recovery() -> bytes:
    """Icinga 2.14 mail-host-notification.sh, RECOVERY: host db02 UP."""
    return _icinga("[RECOVERY] Host db02 is UP!", """\
***** Host Monitoring on monitor *****

db02 is UP!

Info:    PING OK - Packet loss = 0%, RTA = 0.51 ms

When:    2026-11-30 09:40:02 +0100
Host:    db02
IPv4:    192.0.2.32
""", "Mon, 30 Nov 2026 09:40:02 +0100")


def icinga2_service_problem() -> bytes:
    """Icinga 2.14 mail-service-notification.sh, PROBLEM: service disk on db02 CRITICAL."""
    return _icinga("[PROBLEM] disk on db02 is CRITICAL!", """\
***** Service Monitoring on monitor *****

disk on db02 is CRITICAL!

Info:    DISK CRITICAL - free space: / 812 MB (3% inode=91%);

When:    2026-11-30 09:15:20 +0100
Service: disk
Host:    db02
IPv4:    192.0.2.32
""", "Mon, 30 Nov 2026 09:15:20 +0100")


def icinga2_service_recovery() -> bytes:
    """Icinga 2.14 mail-service-notification.sh, RECOVERY: service disk on db02 OK."""
    return _icinga("[RECOVERY] disk on db02 is OK!", """\
***** Service Monitoring on monitor *****

disk on db02 is OK!

Info:    DISK OK - free space: / 20480 MB (71% inode=93%);

When:    2026-11-30 10:02:00 +0100
Service: disk
Host:    db02
IPv4:    192.0.2.32
""", "Mon, 30 Nov 2026 10:02:00 +0100")


def _zabbix(subject: str, body: str, when: str, event: str) -> bytes:
    """Zabbix 6.0's "Email" media type with the default message templates (plain text)."""
    return _mail(f"""
Return-Path: <zabbix@monitor.example.com>
From: <zabbix@monitor.example.com>
To: <{HELPDESK}>
Date: {when}
Subject: {subject}
MIME-Version: 1.0
Content-Type: text/plain; charset="UTF-8"
Content-Transfer-Encoding: base64
Message-ID: <{event}.zabbix@monitor.example.com>

{_base64(body)}""")


def _base64(text: str) -> str:
    encoded = base64.b64encode(text.encode("utf-8")).decode("ascii")
    return "\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76)) + "\n"


def zabbix_problem() -> bytes:
    """Zabbix 6.0 default problem message: subject "Problem: {EVENT.NAME}"."""
    return _zabbix("Problem: High CPU utilization (over 90% for 5m)", """\
Problem started at 09:12:44 on 2026.11.30
Problem name: High CPU utilization (over 90% for 5m)
Host: app03
Severity: Warning
Operational data: Current utilization: 97.31 %
Original problem ID: 84211
""", "Mon, 30 Nov 2026 09:12:45 +0100", "84211.1764490365")


def zabbix_resolved() -> bytes:
    """Zabbix 6.0 default recovery message: subject "Resolved in {EVENT.DURATION}: ..."."""
    return _zabbix("Resolved in 17m 16s: High CPU utilization (over 90% for 5m)", """\
Problem has been resolved at 09:30:00 on 2026.11.30
Problem name: High CPU utilization (over 90% for 5m)
Problem duration: 17m 16s
Host: app03
Severity: Warning
Original problem ID: 84211
""", "Mon, 30 Nov 2026 09:30:01 +0100", "84211.1764491401")


def _alertmanager(status: str, subject: str, when: str) -> bytes:
    """Prometheus Alertmanager 0.27 email receiver with its default template (email.default.html,
    subject from __subject): HTML only, in multipart/alternative."""
    colour = "#D0021B" if status == "firing" else "#68B90F"
    return _mail(f"""
Return-Path: <alertmanager@monitor.example.com>
Subject: {subject}
To: {HELPDESK}
From: alertmanager@monitor.example.com
Message-Id: <1764490{len(subject)}{len(status)}.4711@alertmanager.monitor.example.com>
Date: {when}
Content-Type: multipart/alternative;  boundary=5e1f0c4d2a7b9e3c8f6a1d0b2c4e6f8a
MIME-Version: 1.0

--5e1f0c4d2a7b9e3c8f6a1d0b2c4e6f8a
Content-Transfer-Encoding: quoted-printable
Content-Type: text/html; charset=UTF-8

<!DOCTYPE html><html><head><meta name=3D"viewport" content=3D"width=3Ddevice=
-width"><title>{subject}</title></head><body>
<table class=3D"main"><tr><td class=3D"alert" style=3D"background-color: {colour};">
1 alert for alertname=3DInstanceDown instance=3Dweb01:9100
</td></tr><tr><td><a href=3D"http://monitor.example.com:9093/#/alerts?receiver=3Dhelpdesk"=
>View in Alertmanager</a></td></tr>
<tr><td><strong>[1] {status.capitalize()}</strong></td></tr>
<tr><td><strong>Labels</strong><br>alertname =3D InstanceDown<br>instance =3D web01:9100<br>=
job =3D node<br>severity =3D critical<br><strong>Annotations</strong><br>summary =3D =
Instance web01:9100 down<br><a href=3D"http://monitor.example.com:9090/graph?g0.expr=3Dup+%3D%3D+0">Source</a></td></tr>
</table></body></html>

--5e1f0c4d2a7b9e3c8f6a1d0b2c4e6f8a--
""")


def alertmanager_firing() -> bytes:
    """Alertmanager 0.27 default email, firing: subject "[FIRING:1] InstanceDown (...)"."""
    return _alertmanager("firing", "[FIRING:1] InstanceDown (web01:9100 node critical)",
                         "Mon, 30 Nov 2026 08:12:50 +0000")


def alertmanager_resolved() -> bytes:
    """Alertmanager 0.27 default email, resolved: subject "[RESOLVED] InstanceDown (...)"."""
    return _alertmanager("resolved", "[RESOLVED] InstanceDown (web01:9100 node critical)",
                         "Mon, 30 Nov 2026 08:27:50 +0000")


def _monit(event: str, description: str, when: str) -> bytes:
    """Monit 5.33 with its default mail-format ("monit alert --  $EVENT $SERVICE")."""
    return _mail(f"""
Return-Path: <monit@web01.example.com>
Date: {when}
From: monit@web01.example.com
To: {HELPDESK}
Subject: monit alert --  {event} nginx
Message-ID: <1764490{len(event)}.2231@web01.example.com>
X-Mailer: Monit 5.33.0
MIME-Version: 1.0
Content-Type: text/plain; charset="UTF-8"
Content-Transfer-Encoding: 8bit

{event} Service nginx

	Date:        {when}
	Action:      alert
	Host:        web01.example.com
	Description: {description}

Your faithful employee,
Monit
""")


def monit_failed() -> bytes:
    """Monit 5.33 default alert, "Connection failed" for the nginx service."""
    return _monit("Connection failed",
                  "failed protocol test [HTTP] at [localhost]:80 [TCP/IP] -- Connection refused",
                  "Mon, 30 Nov 2026 09:12:40 +0100")


def monit_succeeded() -> bytes:
    """Monit 5.33 default alert, "Connection succeeded" for the nginx service."""
    return _monit("Connection succeeded",
                  "connection succeeded to [localhost]:80 [TCP/IP]",
                  "Mon, 30 Nov 2026 09:20:40 +0100")


BOUNCES = (postfix_failed, postfix_delayed, exim_failed_plain, exim_failed_dsn,
           exim_delayed_plain, sendmail_failed, qmail_failed, exchange_ndr_rfc822,
           o365_ndr_headers, gmail_failed, quoted_id_only, backscatter)
AUTO_REPLIES = (exchange_oof_en, exchange_oof_de, gmail_vacation, sieve_vacation, x_autoreply,
                x_autorespond, read_receipt, own_automail_back)
PEOPLE = (person, mailing_list, person_forwards_bounce, person_forwards_bounce_inline,
          person_undeliverable_subject, postmaster_writes, auto_generated_notice)
MONITORING = (nagios_host_problem, nagios_host_recovery, nagios_service_problem,
              nagios_service_recovery, icinga2_host_problem, icinga2_host_recovery,
              icinga2_service_problem, icinga2_service_recovery, zabbix_problem, zabbix_resolved,
              alertmanager_firing, alertmanager_resolved, monit_failed, monit_succeeded)
ALL = BOUNCES + AUTO_REPLIES + PEOPLE + MONITORING
