"""Envoy ext_authz v3 (envoy.service.auth.v3.Authorization/Check) on the gRPC server.

To be written: see the gateway issue. `add_envoy_servicer(server, service, recorder, settings)`.
"""

from __future__ import annotations

from typing import Any


def add_envoy_servicer(server: Any, service: Any, recorder: Any, settings: Any) -> None:
    return None
