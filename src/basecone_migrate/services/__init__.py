"""One function per use case. Each owns its transaction; mails leave only after commit."""
