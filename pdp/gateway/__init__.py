"""From a gateway's view of an HTTP request to a decision of the policy language.

Shared by every gateway front end (Envoy ext_authz, the HTTP endpoint for nginx and
Traefik): normalize the path, match a route, fill in resource and context from the
request, and leave the principal to the verified bearer token.
"""
