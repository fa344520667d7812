"""The treasurer's reconciliation: bank statements and Stripe's balance against the ledger."""
