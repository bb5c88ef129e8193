"""Where files land, shared by listeners and jobs: names and patterns, the
landing area and receipts, the receive path, the attachment rules."""
