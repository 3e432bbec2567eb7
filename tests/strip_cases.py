"""What the quote and signature stripping tests' cases share: the text a reply adds."""

REPLY = "Thanks, the refund is on its way."
