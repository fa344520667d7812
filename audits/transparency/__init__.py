"""The public transparency page: units in circulation, the euro reserve, the latest signed
checkpoint, the last clean audit, and how anyone checks them."""
