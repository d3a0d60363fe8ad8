"""The authorization server's decisions: keys, clients, accounts, tokens, SMART scopes.

HTTP lives in `socle.api.auth` and the login pages in `socle.portals`; this package only decides.
"""
