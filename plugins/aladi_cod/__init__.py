"""The ``aladi-cod`` message format: the ALADI digital certificate of origin (COD), with two-stage XMLDSig.

Registered lazily: ``ibb.plugins.aladi_cod.format`` is imported only when a profile uses it.
"""

import pluggy

hookimpl = pluggy.HookimplMarker("ibb")


@hookimpl
def ibb_register_formats(register):
    register("aladi-cod", "ibb.plugins.aladi_cod.format:AladiCod")
