"""The village tool library: a member borrows a tool against a deposit in local units, held
in the library's escrow until the tool comes back (the deposit is refunded) or is declared
lost (the deposit goes to the library's keeper)."""
