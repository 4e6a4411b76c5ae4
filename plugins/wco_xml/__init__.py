"""The ``wco-eco-xml`` message format: ibb's XML rendering of the e-CO dataset, with two-stage XMLDSig.

Registered lazily: ``ibb.plugins.wco_xml.format`` is imported only when a profile uses it.
"""

import pluggy

hookimpl = pluggy.HookimplMarker("ibb")


@hookimpl
def ibb_register_formats(register):
    register("wco-eco-xml", "ibb.plugins.wco_xml.format:WcoEcoXml")
