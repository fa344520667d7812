"""Paying merchants their euros: the bank account each records (signed on their device), and
the treasurer's SEPA credit-transfer files (pain.001.001.03) of pending reconversions."""
