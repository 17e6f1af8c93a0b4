"""The HTTP endpoint for nginx auth_request, Traefik forwardAuth, Envoy http_service and AuthZEN.

To be written: see the gateway issue. `start_http_endpoint(settings, service, recorder, loop)`
returns an object with `close()`; off when `settings.http_port` is 0.
"""

from __future__ import annotations

import asyncio
from typing import Any


class _Off:
    port = 0

    def close(self) -> None:
        return None


async def start_http_endpoint(settings: Any, service: Any, recorder: Any, loop: asyncio.AbstractEventLoop) -> Any:
    return _Off()
