"""The REST transport plugin (``transport = "rest"``).

Registered lazily: ``ibb.plugins.rest.transport`` (and httpx) is imported only when a
profile uses it.
"""

import pluggy

hookimpl = pluggy.HookimplMarker("ibb")


@hookimpl
def ibb_register_transports(register):
    register("rest", "ibb.plugins.rest.transport:RestTransport")
