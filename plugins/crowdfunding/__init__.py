"""Crowdfunding of communal projects: pledges held in escrow until the deadline."""
