"""ibb core: the generic parts of a GNC utility block (entities, rules, triggers, data cluster, service interface)."""
